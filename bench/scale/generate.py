"""The inputs of one scale, generated once into ``.bench-cache/`` (git-ignored), shaped from the bundled real files.

A scale ``s`` (1, 10, 100) is, against today's data:

* the BLS ``pr`` survey replicated to 115,482 x ``replicas(s)`` observations (1, 9, 87 replicas: 115 thousand,
  1.04 million, 10.05 million), AllData and Current files with their series and mapping files
  (``bench.scale.gen_bulk``);
* one large Socrata dataset of 50,000 x ``s`` rows (today's largest, ``8idm-becu``, holds 49,797), its rows cycled from
  that recording and served page by page by the replay, with a delay before each page (``LARGE_PAGE_DELAY_S``);
* 10 x ``s`` BLS API series, in four surveys, their observations shaped from the recorded v2 responses;
* 2 x ``s`` ordinary Socrata datasets, each a copy (new ids, rows renamed) of one of the six recorded registers;
* DataUSA population, as recorded.

Each scale gets a replay folder and a catalog (the scheduler plans the run from it).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scale import paths
from bench.scale.gen_bulk import generate_survey, observations

LARGE_DATASET = "bigd-0001"
LARGE_TEMPLATE = "8idm-becu"
# The time a page of 50,000 rows (10 MB) takes to start arriving from the portal: SODA builds a page before it answers.
# An assumption, stated in bench/README.md: there is no network here to measure the real portal.
LARGE_PAGE_DELAY_S = 3.0
ORDINARY_TEMPLATES = ("ivft-vegh", "9uvn-hv6j", "utrz-jf79", "amca-cgrp", "b4rr-d25b", "9aju-tpwc")
API_TEMPLATE = "ryansuhr_bls_api_v2_response_2024-12-13.json"
API_SURVEYS = ("LNU", "CEU", "CUU", "LAU")  # four surveys: the fact gets partitions of several surveys
API_YEARS = range(2016, 2027)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip


@dataclass(frozen=True)
class Scale:
    factor: int

    @property
    def name(self) -> str:
        return f"{self.factor}x"

    @property
    def replicas(self) -> int:
        return {1: 1, 10: 9, 100: 87}.get(self.factor, max(1, round(self.factor * 0.87)))

    @property
    def large_rows(self) -> int:
        return 50_000 * self.factor

    @property
    def api_series(self) -> int:
        return 10 * self.factor

    @property
    def ordinary_datasets(self) -> int:
        return 2 * self.factor

    @property
    def observations(self) -> int:
        return observations(self.replicas)

    @property
    def folder(self) -> Path:
        return paths.CACHE / "scale" / self.name

    @property
    def replay(self) -> Path:
        return self.folder / "replay"

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.toml"

    def describe(self) -> dict[str, Any]:
        return {
            "bulk_observations": self.observations,
            "large_socrata_rows": self.large_rows,
            "api_series": self.api_series,
            "ordinary_socrata_datasets": self.ordinary_datasets,
        }


def survey_folder(replicas: int) -> Path:
    """The replicated survey, generated once per replica count and shared by the scales."""
    folder = paths.CACHE / f"survey-{replicas}" / "bls_bulk" / "pr"
    if not (folder / "pr.data.1.AllData").is_file():
        generate_survey(folder, replicas)
    return folder


def api_series_ids(count: int) -> list[str]:
    return [f"{API_SURVEYS[n % len(API_SURVEYS)]}{n:08d}" for n in range(count)]


def ordinary_ids(count: int) -> list[str]:
    return [f"o{n // 10000:03d}-{n % 10000:04d}" for n in range(count)]


def _api_recording(series: list[str]) -> dict[str, Any]:
    """One v2 response holding every generated series, each shaped after a recorded series (monthly values)."""
    document = json.loads((paths.REPLAY / "bls_api" / API_TEMPLATE).read_text())
    templates = [s for s in document["Results"]["series"] if s.get("data")]
    out = []
    for n, sid in enumerate(series):
        values = [float(o["value"]) for o in templates[n % len(templates)]["data"] if o["value"] not in ("-", "")]
        data = []
        step = 0
        for year in reversed(API_YEARS):
            for month in range(12, 0, -1):
                if year == API_YEARS[-1] and month > 10:
                    continue
                value = values[step % len(values)] * (1 + n / 10_000)
                data.append(
                    {
                        "year": str(year),
                        "period": f"M{month:02d}",
                        "periodName": MONTHS[month - 1],
                        "value": f"{value:.1f}",
                        "footnotes": [{}],
                    }
                )
                step += 1
        out.append({"seriesID": sid, "data": data})
    return {"status": "REQUEST_SUCCEEDED", "responseTime": 120, "message": [], "Results": {"series": out}}


def _ordinary(target: Path, dataset: str, template: str) -> None:
    rows = json.loads((paths.REPLAY / "socrata" / f"{template}.json").read_bytes())
    text_fields = [k for k, v in rows[0].items() if isinstance(v, str) and not v.replace(".", "").isdigit()]
    renamed = text_fields[0] if text_fields else None
    out = []
    for row in rows:
        copy = dict(row)
        if renamed and isinstance(copy.get(renamed), str):
            copy[renamed] = f"{copy[renamed]} ({dataset})"
        out.append(copy)
    (target / f"{dataset}.json").write_text(json.dumps(out, ensure_ascii=False))
    shutil.copy2(paths.REPLAY / "socrata" / f"{template}.views.json", target / f"{dataset}.views.json")


def _catalog(scale: Scale, series: list[str], ordinary: list[str]) -> str:
    lines = [
        f"# Generated by bench.scale.generate for the {scale.name} scale: see bench/README.md.",
        "version = 1",
        "",
        "[[bls_api]]",
        'group = "Generated series"',
        "series = [",
        *(f'  {{ id = "{sid}", name = "Generated series {sid}" }},' for sid in series),
        "]",
        "",
        "[[bls_bulk]]",
        'id = "pr"',
        'name = "Major Sector Productivity and Costs (PR), replicated"',
        "",
        "[[datausa]]",
        'id = "population"',
        'name = "US population"',
        "",
        "[[socrata]]",
        f'id = "{LARGE_DATASET}"',
        f'name = "Large dataset ({scale.large_rows:,} rows), shaped from {LARGE_TEMPLATE}"',
    ]
    for dataset in ordinary:
        lines += ["", "[[socrata]]", f'id = "{dataset}"', f'name = "Ordinary dataset {dataset}"']
    return "\n".join(lines) + "\n"


def prepare(scale: Scale) -> Scale:
    """Generate the scale's replay folder and catalog unless they are there already."""
    stamp = scale.folder / "ready.json"
    survey = scale.replay / "bls_bulk" / "pr"
    # a cache copied or moved from another checkout can hold a link to a survey that is no longer there
    if stamp.is_file() and json.loads(stamp.read_text()) == scale.describe() and (survey / "pr.series").is_file():
        return scale
    if scale.folder.exists():
        shutil.rmtree(scale.folder)
    replay = scale.replay
    (replay / "bls_bulk").mkdir(parents=True)
    # relative, so that the cache stays whole wherever the checkout (and its .bench-cache/) is moved
    target = os.path.relpath(survey_folder(scale.replicas).resolve(), survey.parent.resolve())
    survey.symlink_to(target, target_is_directory=True)
    (replay / "bls_api").mkdir()
    series = api_series_ids(scale.api_series)
    (replay / "bls_api" / "generated.json").write_text(json.dumps(_api_recording(series)))
    (replay / "datausa").mkdir()
    shutil.copy2(paths.REPLAY / "datausa" / "population.json", replay / "datausa" / "population.json")
    (replay / "socrata").mkdir()
    ordinary = ordinary_ids(scale.ordinary_datasets)
    for n, dataset in enumerate(ordinary):
        _ordinary(replay / "socrata", dataset, ORDINARY_TEMPLATES[n % len(ORDINARY_TEMPLATES)])
    shutil.copy2(
        paths.REPLAY / "socrata" / f"{LARGE_TEMPLATE}.views.json", replay / "socrata" / f"{LARGE_DATASET}.views.json"
    )
    scale.catalog.write_text(_catalog(scale, series, ordinary))
    stamp.write_text(json.dumps(scale.describe()))
    return scale


# ----------------------------------------------------------------------------------------------------------------
# The large dataset, served page by page by a replay hook (5 million rows never sit in the replay's memory)
# ----------------------------------------------------------------------------------------------------------------


class LargeDataset:
    """Answers the large dataset's rows, count and metadata; rows are the template's, cycled, each with its ``:id``.

    A page is built from pre-rendered row texts (no ``json.dumps`` per row) and answered after ``delay_s``.
    """

    def __init__(self, rows: int, delay_s: float = LARGE_PAGE_DELAY_S) -> None:
        self.rows = rows
        self.delay_s = delay_s
        template = json.loads((paths.REPLAY / "socrata" / f"{LARGE_TEMPLATE}.json").read_bytes())
        self.fragments = [json.dumps(r, ensure_ascii=False, separators=(",", ":"))[1:] for r in template]
        self.views = (paths.REPLAY / "socrata" / f"{LARGE_TEMPLATE}.views.json").read_bytes()
        self.pages = 0

    @staticmethod
    def row_id(index: int) -> str:
        from localrun.replay import socrata_row_id

        return socrata_row_id(LARGE_DATASET, index)

    def page(self, offset: int, limit: int) -> bytes:
        end = min(self.rows, offset + limit)
        n = len(self.fragments)
        body = ",".join(f'{{":id":"{self.row_id(i)}",{self.fragments[i % n]}' for i in range(offset, end))
        return f"[{body}]".encode()

    def __call__(self, request: Any, proceed: Any) -> Any:
        from localrun.replay import ReplayResponse

        if LARGE_DATASET not in request.path:
            return proceed()
        if request.endpoint == "socrata_views":
            return ReplayResponse(body=self.views)
        if request.endpoint == "socrata_count":
            return ReplayResponse.json_body([{"row_count": str(self.rows)}])
        if request.endpoint == "socrata_rows":
            offset, limit = int(request.query.get("$offset", 0)), int(request.query.get("$limit", 1000))
            self.pages += 1
            return ReplayResponse(body=self.page(offset, limit), delay_seconds=self.delay_s)
        return proceed()
