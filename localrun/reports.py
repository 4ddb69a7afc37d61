"""The report answers and charts, read from the marts of a lake: a local folder (``.lake/``) or an S3 bucket.

* ``print_reports(lake_dir, say)``: the end of ``make run`` prints the report answers, then Catalunya's
  (``localrun.catalunya_reports``).
* ``python -m localrun.reports [--lake-dir DIR | --lake s3://bucket]`` (``make report``): renders the charts to
  PNG and a small HTML page under the lake's ``marts/reports/`` (or ``--out DIR``).
* ``notebooks/analysis.ipynb`` draws the same charts with the same functions.

A mart is read the way Athena reads its table: every Parquet file in its folder. matplotlib loads only when a chart
is drawn, with figures made without pyplot, so this works headless and never touches a GUI backend.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from localrun.catalunya_reports import catalunya_figures, catalunya_lines

ROOT = Path(__file__).resolve().parent.parent
MART_PATHS = {
    "population_stats": "marts/reports/population_stats/",
    "bls_best_year": "marts/reports/bls_best_year/",
    "series_population": "marts/reports/series_population/",
    "bls_population_correlation": "marts/reports/bls_population_correlation/",
    "agg_population_yearly": "marts/aggregates/agg_population_yearly/",
    "dim_series": "marts/dimensions/dim_series/",
    "agg_coverage_comarca": "marts/aggregates/agg_coverage_comarca/",
    "agg_coverage_municipality": "marts/aggregates/agg_coverage_municipality/",
    "dim_municipality": "marts/dimensions/dim_municipality/",
    "dim_comarca": "marts/dimensions/dim_comarca/",
    "territory_resolution": "marts/reports/territory_resolution/",
    "agg_energy_comarca_yearly": "marts/aggregates/agg_energy_comarca_yearly/",
    "dim_economic_sector": "marts/dimensions/dim_economic_sector/",
}
LINEAGE_DIR = "marts/_lineage/"
LINEAGE_GRAPH = f"{LINEAGE_DIR}graph.mmd"
REPORTS_DIR = "marts/reports"
CHARTS_DIR = "charts"
CHARTS = ("population_over_time", "best_year_distribution", "prs30006032_vs_population", "bls_population_correlation")
CATALUNYA_CHARTS = ("catalunya_coverage_by_comarca", "catalunya_coverage_map", "catalunya_electricity_by_sector")
SERIES = "PRS30006032"


# ----------------------------------------------------------------------------------------------------------------
# Reading the lake
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lake:
    """A lake: a local folder mirroring the bucket's keys, or ``s3://bucket`` (AWS_ENDPOINT_URL is honoured)."""

    location: str

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    @property
    def bucket(self) -> str:
        return self.location.removeprefix("s3://").split("/", 1)[0]

    def _s3(self) -> Any:
        import boto3

        return boto3.client("s3")

    def _keys(self, prefix: str) -> list[str]:
        if self.is_s3:
            keys: list[str] = []
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
            return sorted(keys)
        folder = Path(self.location) / prefix
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.location).as_posix() for p in folder.iterdir() if p.is_file())

    def read_bytes(self, key: str) -> bytes | None:
        if self.is_s3:
            s3 = self._s3()
            try:
                return s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None
        path = Path(self.location) / key
        return path.read_bytes() if path.is_file() else None

    def mart(self, name: str) -> pa.Table | None:
        """A mart's table (every Parquet file in its folder, as Athena reads it), or None when not built."""
        prefix = MART_PATHS[name]
        parts = []
        for key in self._keys(prefix):
            file_name = key.rsplit("/", 1)[-1]
            if file_name.endswith(".parquet") and not file_name.startswith(("_", ".")):
                # use_threads=False: no Arrow reader threads left to race interpreter exit (apache/arrow#34314)
                parts.append(pq.read_table(pa.BufferReader(self.read_bytes(key) or b""), use_threads=False))
        return pa.concat_tables(parts) if parts else None

    def lineage(self, name: str) -> dict[str, Any] | None:
        body = self.read_bytes(f"{LINEAGE_DIR}marts/{name}.json")
        return json.loads(body) if body else None

    def lineage_mermaid(self) -> str | None:
        body = self.read_bytes(LINEAGE_GRAPH)
        return body.decode() if body else None


def _lake(lake: Lake | str | Path) -> Lake:
    return lake if isinstance(lake, Lake) else Lake(str(lake))


# ----------------------------------------------------------------------------------------------------------------
# The answers, as text
# ----------------------------------------------------------------------------------------------------------------


def _number(value: float | int | None, decimals: int = 2) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


def population_stats_lines(table: pa.Table) -> list[str]:
    row = table.to_pylist()[0]
    return [
        f"population_stats: US population {row['year_from']}-{row['year_to']}, {row['vintage']} "
        f"({row['years_present']} of {row['years_expected']} years present: {row['years']})",
        f"  mean                         {_number(row['mean_population']):>20}",
        f"  std, population (ddof=0)     {_number(row['std_population_ddof0']):>20}",
        f"  std, sample (ddof=1)         {_number(row['std_sample_ddof1']):>20}",
    ]


def best_year_lines(table: pa.Table, shown: int = 5) -> list[str]:
    rows = table.to_pylist()
    by_year = Counter(r["year"] for r in rows if r["year"] is not None)
    common = ", ".join(f"{year} ({n})" for year, n in by_year.most_common(5))
    lines = [
        f"bls_best_year: {len(rows)} series, one row each (pr.data.0.Current; Q01-Q04 sums, Q05 if annual only)",
        f"  most frequent best years: {common}",
        f"  {'series_id':<14}{'year':>6}{'value':>12}",
    ]
    lines += [f"  {r['series_id']:<14}{r['year'] or '-':>6}{_number(r['value'], 3):>12}" for r in rows[:shown]]
    if len(rows) > shown:
        lines.append(f"  ... {len(rows) - shown} more (marts/reports/bls_best_year/)")
    return lines


def series_population_lines(table: pa.Table) -> list[str]:
    rows = table.to_pylist()
    with_population = sum(r["population"] is not None for r in rows)
    lines = [
        f"series_population: {SERIES} Q01, {len(rows)} years, {with_population} with a population, "
        f"{len(rows) - with_population} without (kept, population null)",
        f"  {'year':>6}{'value':>9}{'population':>16}",
    ]
    lines += [f"  {r['year']:>6}{_number(r['value'], 1):>9}{_number(r['population'], 0):>16}" for r in rows]
    return lines


def correlation_lines(table: pa.Table, shown: int = 3) -> list[str]:
    rows = [r for r in table.to_pylist() if r["pearson_r"] is not None]
    rows.sort(key=lambda r: -abs(r["pearson_r"]))
    lines = [f"bls_population_correlation: {table.num_rows} series, {len(rows)} with a defined Pearson r"]
    lines += [
        f"  {r['series_id']:<14} r = {r['pearson_r']:+.3f} over {r['n_years']} years "
        f"({r['first_year']}-{r['last_year']})"
        for r in rows[:shown]
    ]
    return lines


def print_reports(lake_dir: Path, say: Callable[[str], None]) -> None:
    """Print the report answers found in a local lake (the end of ``make run``)."""
    say(f"\n== reports ({Path(lake_dir) / REPORTS_DIR})")
    print_answers(_lake(lake_dir), say)


def print_answers(lake: Lake, say: Callable[[str], None]) -> None:
    printers = (
        ("population_stats", population_stats_lines),
        ("bls_best_year", best_year_lines),
        ("series_population", series_population_lines),
        ("bls_population_correlation", correlation_lines),
    )
    for name, lines_of in printers:
        table = lake.mart(name)
        if table is None or table.num_rows == 0:
            say(f"   {name}: not built yet (its staging inputs are missing)")
            continue
        for line in lines_of(table):
            say("   " + line)
    for line in catalunya_lines(lake.mart):
        say("   " + line)


# ----------------------------------------------------------------------------------------------------------------
# Charts (matplotlib Figures, no pyplot)
# ----------------------------------------------------------------------------------------------------------------


def _figure(width: float = 8.0, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def chart_population(yearly: pa.Table, stats: pa.Table | None = None) -> Any:
    """US population by year (each staged vintage), with the 2013-2018 mean +- std of the reports' vintage."""
    fig = _figure()
    ax = fig.add_subplot()
    rows = yearly.to_pylist()
    for vintage in sorted({r["vintage"] for r in rows}):
        points = sorted((r["year"], r["population"]) for r in rows if r["vintage"] == vintage)
        preferred = any(r["is_preferred_vintage"] for r in rows if r["vintage"] == vintage)
        ax.plot(
            [p[0] for p in points],
            [p[1] / 1e6 for p in points],
            marker="o",
            linewidth=2.2 if preferred else 1.0,
            label=f"{vintage}{' (used by the reports)' if preferred else ''}",
        )
    if stats is not None and stats.num_rows:
        s = stats.to_pylist()[0]
        mean, std = s["mean_population"] / 1e6, s["std_population_ddof0"] / 1e6
        ax.axhline(mean, color="grey", linestyle="--", linewidth=1)
        ax.axhspan(mean - std, mean + std, xmin=0, xmax=1, color="grey", alpha=0.12)
        ax.axvspan(s["year_from"] - 0.5, s["year_to"] + 0.5, color="tab:orange", alpha=0.07)
        ax.text(s["year_from"], mean, f" mean {s['year_from']}-{s['year_to']}: {mean:,.1f} M", va="bottom", fontsize=8)
    ax.set_title("US population by year (DataUSA, ACS)")
    ax.set_xlabel("year")
    ax.set_ylabel("population (millions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def chart_best_years(best: pa.Table) -> Any:
    """How many pr series peak in each year."""
    fig = _figure()
    ax = fig.add_subplot()
    counts = Counter(y for y in best["year"].to_pylist() if y is not None)
    years = sorted(counts)
    ax.bar(years, [counts[y] for y in years], color="tab:blue")
    ax.set_title(f"Best year of each pr series ({best.num_rows} series, pr.data.0.Current)")
    ax.set_xlabel("best year (largest Q01-Q04 sum; Q05 for annual-only series)")
    ax.set_ylabel("series")
    ax.grid(axis="y", alpha=0.3)
    return fig


def chart_series_population(table: pa.Table) -> Any:
    """PRS30006032 Q01 by year (bars) against US population (line); years without population show no point."""
    fig = _figure()
    ax = fig.add_subplot()
    rows = table.to_pylist()
    ax.bar([r["year"] for r in rows], [r["value"] for r in rows], color="tab:gray", label=f"{SERIES} Q01 (% change)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("year")
    ax.set_ylabel(f"{SERIES} Q01, % change from previous quarter")
    right = ax.twinx()
    # NaN where a year has no population: the line breaks there instead of bridging the gap (2020).
    population = [float("nan") if r["population"] is None else r["population"] / 1e6 for r in rows]
    right.plot([r["year"] for r in rows], population, "o-", color="tab:red", label="population")
    right.set_ylabel("US population (millions)", color="tab:red")
    ax.set_title(f"{SERIES} (manufacturing hours worked), Q01, and US population")
    ax.grid(alpha=0.3)
    return fig


def chart_correlations(correlation: pa.Table, series: pa.Table | None = None, top: int = 12) -> Any:
    """The distribution of Pearson r across series, and the strongest correlations."""
    fig = _figure(10, 4.8)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
    rows = [r for r in correlation.to_pylist() if r["pearson_r"] is not None]
    left.hist([r["pearson_r"] for r in rows], bins=20, range=(-1, 1), color="tab:purple")
    left.set_title(f"Pearson r with population ({len(rows)} series)")
    left.set_xlabel("r")
    left.set_ylabel("series")
    titles = {}
    if series is not None:
        titles = {r["series_id"]: r["series_title"] for r in series.select(["series_id", "series_title"]).to_pylist()}
    ordered = sorted(rows, key=lambda r: r["pearson_r"])
    strongest = ordered if len(ordered) <= top else ordered[: top // 2] + ordered[-(top // 2) :]
    labels = [f"{r['series_id']} {(titles.get(r['series_id']) or '')[:32]}" for r in strongest]
    right.barh(
        labels,
        [r["pearson_r"] for r in strongest],
        color=["tab:green" if r["pearson_r"] > 0 else "tab:red" for r in strongest],
    )
    right.set_xlim(-1, 1)
    right.tick_params(axis="y", labelsize=7)
    right.set_title("most negative and most positive r")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# make report
# ----------------------------------------------------------------------------------------------------------------


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """A figure as PNG bytes (the report's files, and the notebook's images whatever the backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def render_figures(lake: Lake | str | Path) -> dict[str, Any]:
    """The charts drawn from the lake's marts: the four BLS and population ones, then Catalunya's (a chart whose
    marts are missing is left out)."""
    lake = _lake(lake)
    figures: dict[str, Any] = {}
    yearly = lake.mart("agg_population_yearly")
    if yearly is not None:
        figures["population_over_time"] = chart_population(yearly, lake.mart("population_stats"))
    best = lake.mart("bls_best_year")
    if best is not None:
        figures["best_year_distribution"] = chart_best_years(best)
    series_population = lake.mart("series_population")
    if series_population is not None:
        figures["prs30006032_vs_population"] = chart_series_population(series_population)
    correlation = lake.mart("bls_population_correlation")
    if correlation is not None:
        figures["bls_population_correlation"] = chart_correlations(correlation, lake.mart("dim_series"))
    figures.update(catalunya_figures(lake.mart))
    return figures


def _html_page(lake: Lake, charts: list[str]) -> str:
    sections = []
    printers = (
        ("population_stats", population_stats_lines),
        ("bls_best_year", best_year_lines),
        ("series_population", series_population_lines),
        ("bls_population_correlation", correlation_lines),
    )
    for name, lines_of in printers:
        table = lake.mart(name)
        body = "not built yet" if table is None else "\n".join(lines_of(table))
        sections.append(f"<h2>{html.escape(name)}</h2>\n<pre>{html.escape(body)}</pre>")
    catalunya = catalunya_lines(lake.mart)
    if catalunya:
        sections.append(f"<h2>Catalunya</h2>\n<pre>{html.escape(chr(10).join(catalunya))}</pre>")
    images = "\n".join(
        f'<figure><img src="{CHARTS_DIR}/{name}.png" alt="{name}" width="800"><figcaption>{name}</figcaption></figure>'
        for name in charts
    )
    graph = lake.lineage_mermaid()
    lineage = f"<h2>Lineage (Mermaid)</h2>\n<pre>{html.escape(graph)}</pre>" if graph else ""
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Open-data pipeline reports</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}pre{background:#f6f6f6;padding:8px}</style>"
        f"</head><body>\n<h1>Open-data pipeline reports</h1>\n<p>Lake: {html.escape(lake.location)}</p>\n"
        + "\n".join(sections)
        + f"\n<h2>Charts</h2>\n{images}\n{lineage}\n</body></html>\n"
    )


def render_report(lake: Lake | str | Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write the charts (PNG) and ``report.html`` to ``out_dir`` (default: the local lake's ``marts/reports/``).

    Returns
    -------
    The written files by name (``report`` and one entry per chart).

    Raises
    ------
    ValueError
        When the lake is an S3 bucket and no ``out_dir`` is given, or when no report mart exists yet.
    """
    lake = _lake(lake)
    if out_dir is None:
        if lake.is_s3:
            raise ValueError("an S3 lake needs --out DIR for the rendered report")
        out_dir = Path(lake.location) / REPORTS_DIR
    figures = render_figures(lake)
    if not figures:
        raise ValueError(f"no report marts in {lake.location}: run the pipeline first (make run)")
    charts_dir = out_dir / CHARTS_DIR
    charts_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, fig in figures.items():
        path = charts_dir / f"{name}.png"
        path.write_bytes(figure_png(fig))
        written[name] = path
    page = out_dir / "report.html"
    page.write_text(_html_page(lake, list(figures)), encoding="utf-8")
    written["report"] = page
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localrun.reports", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--lake-dir", type=Path, default=ROOT / ".lake", help="local lake folder (default: .lake)")
    where.add_argument("--lake", help="s3://bucket of a deployed lake (AWS_ENDPOINT_URL is honoured)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the lake's marts/reports/)")
    args = parser.parse_args(argv)
    lake = Lake(args.lake) if args.lake else Lake(str(args.lake_dir.resolve()))
    try:
        written = render_report(lake, args.out)
    except ValueError as exc:
        print(f"make report: {exc}", file=sys.stderr)
        return 1
    print_answers(lake, print)
    print()
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
