"""The build of one partitioned mart, survey by survey and year by year (see ``modeler.partitions``).

Its first input drives the partitions: a staging table (scattered by its files' ``survey`` and its rows' ``year``)
or another partitioned mart (the same partition of it). The mart's build function builds one partition from that
partition's rows; its checks run on every partition, then its row-count check on the whole, before anything is
written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from aws_lambda_powertools import Logger

from modeler import lineage
from modeler.adapters import StagingFile
from modeler.checks import CheckContext, CheckResult, RowCountDelta, run_checks
from modeler.partitions import (
    PARTITION_GROUP,
    PartitionedTable,
    PartitionIndex,
    SurveyIndex,
    content_sha256,
    landing_from_counts,
    partition_body,
    partition_key,
    scatter_staging,
    sha_of,
)
from modeler.spec import MartSpec, NoInputRows

if TYPE_CHECKING:
    from modeler.build import MartOutcome, Rebuild

logger = Logger(child=True)


@dataclass
class _Pending:
    """What a build will publish once every check passed: bodies (spooled to files), deletions, indexes."""

    folder: str
    writes: list[tuple[str, str, SurveyIndex, int]] = field(default_factory=list)  # (key, body path, index, year)
    deletes: list[str] = field(default_factory=list)
    indexes: dict[str, SurveyIndex] = field(default_factory=dict)  # surveys rebuilt
    removed: list[str] = field(default_factory=list)  # surveys gone from the inputs
    failures: list[tuple[str, CheckResult]] = field(default_factory=list)  # (partition, failed check)
    results: dict[str, CheckResult] = field(default_factory=dict)  # one per check name (the last seen)
    rebuilt: int = 0  # partitions built


def survey_fingerprint(spec: MartSpec, parts: Mapping[str, Any]) -> str:
    document = {"mart": spec.name, "version": spec.version, "inputs": dict(sorted(parts.items()))}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


class PartitionedBuild:
    def __init__(self, rebuild: Rebuild, spec: MartSpec) -> None:
        self.rebuild = rebuild
        self.spec = spec
        self.lake = rebuild.lake
        self.index = PartitionIndex(self.lake, spec)

    # -- inputs by survey ---------------------------------------------------------------------------------------
    def _surveys(self, staging: dict[str, list[StagingFile]], marts: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """survey -> what drives its partitions: its staging files, or the upstream mart's survey index."""
        driver = self.spec.inputs[0]
        if driver.layer == "staging":
            groups: dict[str, list[StagingFile]] = {}
            for name in sorted(t for t in staging if driver.matches(t)):
                for f in staging[name]:
                    groups.setdefault(f.partition.get(PARTITION_GROUP, ""), []).append(f)
            return groups
        return dict(self.upstream(driver.name).indexes)

    def upstream(self, name: str) -> PartitionedTable:
        built = self.rebuild.built_table(name)
        if isinstance(built, PartitionedTable):
            return built
        from modeler.registry import by_name

        spec = by_name(self.rebuild.marts)[name]
        return PartitionedTable(self.lake, spec, PartitionIndex(self.lake, spec).all())

    def _fingerprint(self, driver: Any) -> str:
        if isinstance(driver, SurveyIndex):
            return survey_fingerprint(self.spec, {"mart": {str(y): p["sha"] for y, p in driver.partitions.items()}})
        return survey_fingerprint(self.spec, {"staging": [f"{f.key}|{f.etag}|{f.size}" for f in driver]})

    # -- the build ----------------------------------------------------------------------------------------------
    def run(self, staging: dict[str, list[StagingFile]], marts: dict[str, dict[str, Any]]) -> MartOutcome:
        from modeler.build import MartOutcome

        spec = self.spec
        previous_record = self.rebuild.published(spec.name)
        surveys = self._surveys(staging, marts)
        previous = self.index.all()
        present = {info.key for info in self.lake.store.list(spec.prefix)}
        pending = _Pending(folder=tempfile.mkdtemp(prefix="partitions-"))
        try:
            current: dict[str, SurveyIndex] = {}
            for survey, driver in sorted(surveys.items()):
                fingerprint = self._fingerprint(driver)
                before = previous.get(survey)
                if before is not None and before.fingerprint == fingerprint and _all_present(before, present):
                    current[survey] = before
                    continue
                current[survey] = self._rebuild_survey(survey, driver, fingerprint, before, pending)
            for survey in sorted(set(previous) - set(surveys)):
                pending.removed.append(survey)
                pending.deletes += [p["key"] for p in previous[survey].partitions.values()]
            current = {s: i for s, i in current.items() if i.partitions}
            rows = sum(i.rows for i in current.values())
            if not rows:
                return MartOutcome(spec.name, "skipped", f"no rows to build {spec.name} from")
            failures = [f for _, f in pending.failures] + self._whole_checks(rows, previous_record, pending)
            if failures:
                return self.rebuild.fail(spec, rows, failures)
            return self._publish(current, pending, rows, previous_record, staging, marts)
        finally:
            shutil.rmtree(pending.folder, ignore_errors=True)

    def _rebuild_survey(
        self, survey: str, driver: Any, fingerprint: str, before: SurveyIndex | None, pending: _Pending
    ) -> SurveyIndex:
        """Build every partition of a survey; queue the ones whose bytes changed, and the years that went."""
        index = SurveyIndex(survey=survey, fingerprint=fingerprint)
        known = before.partitions if before is not None else {}
        for year, table in self._partition_inputs(survey, driver, index):
            pending.rebuilt += 1
            try:
                built = self.rebuild.sorted_by_key(self.spec.build({self.spec.inputs[0].name: table}, None), self.spec)
            except NoInputRows:
                continue
            if not built.num_rows:
                continue
            self._check(f"{survey}/{year}", built, table, pending)
            body = partition_body(self.spec, built)
            sha = sha_of(body)
            entry = {"key": partition_key(self.spec, survey, year), "sha": sha, "rows": built.num_rows}
            old = known.get(year)
            if old is not None and old.get("sha") == sha:
                entry["version_id"] = old.get("version_id")
            else:
                path = os.path.join(pending.folder, f"{survey}-{year}.parquet")
                with open(path, "wb") as out:
                    out.write(body)
                pending.writes.append((entry["key"], path, index, year))
            index.partitions[year] = entry
        pending.deletes += [p["key"] for y, p in known.items() if y not in index.partitions]
        pending.indexes[survey] = index
        return index

    def _partition_inputs(self, survey: str, driver: Any, index: SurveyIndex) -> Iterator[tuple[int, pa.Table]]:
        if isinstance(driver, SurveyIndex):  # the same partitions of an upstream partitioned mart
            upstream = self.upstream(self.spec.inputs[0].name)
            for year in sorted(driver.partitions):
                yield year, upstream.read_partition(survey, year)
            return
        spools, counts = scatter_staging(self.lake, driver, self.spec.scatter_schema, None)
        try:
            index.landing = landing_from_counts(counts)
            index.files = [{"key": f.key, "etag": f.etag} for f in sorted(driver, key=lambda f: f.key)]
            for year in spools.years():
                yield year, spools.read(year)
        finally:
            spools.discard()

    def _check(self, where: str, table: pa.Table, source: pa.Table, pending: _Pending) -> None:
        partition_checks = tuple(c for c in self.spec.checks if not isinstance(c, RowCountDelta))
        context = CheckContext(inputs={self.spec.inputs[0].name: source})
        for result in run_checks(partition_checks, table, context):
            if not result.passed:
                pending.failures.append((where, _located(result, where)))
            elif result.name not in pending.results:
                pending.results[result.name] = result

    def _whole_checks(self, rows: int, previous: dict[str, Any] | None, pending: _Pending) -> list[CheckResult]:
        failed = []
        context = CheckContext(previous_rows=previous.get("rows") if previous else None)
        for check in self.spec.checks:
            if isinstance(check, RowCountDelta):
                result = check.evaluate(_Rows(rows), context)  # type: ignore[arg-type]
                pending.results[result.name] = result
                if not result.passed:
                    failed.append(result)
        return failed

    # -- publication --------------------------------------------------------------------------------------------
    def _publish(
        self,
        current: dict[str, SurveyIndex],
        pending: _Pending,
        rows: int,
        previous: dict[str, Any] | None,
        staging: dict[str, list[StagingFile]],
        marts: dict[str, dict[str, Any]],
    ) -> MartOutcome:
        from modeler.build import MartOutcome

        spec, run_id = self.spec, self.rebuild.run_id
        for key, path, index, year in pending.writes:
            with open(path, "rb") as handle:
                body = handle.read()
            put = self.lake.put(
                key,
                body,
                "application/vnd.apache.parquet",
                metadata={
                    "run-id": run_id,
                    "content-sha256": index.partitions[year]["sha"],
                    "record-count": str(index.partitions[year]["rows"]),
                },
            )
            index.partitions[year]["version_id"] = put.version_id
        for key in pending.deletes:
            self.lake.store.delete(key)
        for index in pending.indexes.values():
            if index.partitions:
                self.index.put(index)
            else:
                self.index.delete(index.survey)
        for survey in pending.removed:
            self.index.delete(survey)
        sha = content_sha256(current)
        fingerprint = hashlib.sha256("".join(i.fingerprint for _, i in sorted(current.items())).encode()).hexdigest()
        changed = bool(pending.writes or pending.deletes or pending.removed)
        if not changed and previous and previous.get("content_sha256") == sha:
            status = "unchanged" if not pending.rebuilt else "same_content"
        else:
            status = "published"
            document = lineage.mart_document(
                name=spec.name,
                kind=spec.kind,
                key=spec.prefix,
                rows=rows,
                content_sha256=sha,
                version_id=None,
                built_at=self.rebuild.now.isoformat(),
                run_ids=self.rebuild.run_ids,
                input_fingerprint=fingerprint,
                inputs=self._lineage_inputs(current, marts),
                checks=[r.as_dict() for r in pending.results.values()],
            )
            document["partitions"] = sum(len(i.partitions) for i in current.values())
            document["partitions_written"] = len(pending.writes)
            document["partitions_deleted"] = len(pending.deletes)
            self.lake.put(spec.lineage_key, json.dumps(document, indent=1).encode(), "application/json")
            self.rebuild.documents[spec.name] = document
        record = {
            "key": spec.prefix,
            "rows": rows,
            "content_sha256": sha,
            "version_id": None,
            "input_fingerprint": fingerprint,
            "partitions": sum(len(i.partitions) for i in current.values()),
            "built_at": self.rebuild.now.isoformat(),
            "run_id": run_id,
        }
        self.rebuild.record(spec.name, record, PartitionedTable(self.lake, spec, current))
        logger.info(
            "partitioned mart built",
            extra={
                "mart": spec.name,
                "partitions": record["partitions"],
                "rebuilt": pending.rebuilt,
                "written": len(pending.writes),
                "deleted": len(pending.deletes),
            },
        )
        reason = {"unchanged": "inputs unchanged", "same_content": "content identical to the published version"}
        return MartOutcome(spec.name, status, reason.get(status, ""), rows, spec.prefix)

    def _lineage_inputs(
        self, current: dict[str, SurveyIndex], marts: dict[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        driver = self.spec.inputs[0]
        if driver.layer == "mart":
            record = marts.get(driver.name) or {}
            return [
                lineage.mart_input(driver.name, record.get("key", ""), record.get("content_sha256"), record.get("rows"))
            ]
        landing: dict[str, dict[str, Any]] = {}
        for index in current.values():
            for entry in index.landing:
                merged = landing.setdefault(entry["object"], {"object": entry["object"], "run_ids": set(), "rows": 0})
                merged["run_ids"].update(entry["run_ids"])
                merged["rows"] += entry["rows"]
        return [
            {
                "layer": "staging",
                "table": driver.name,
                "selection": driver.selection,
                "rows": sum(e["rows"] for e in landing.values()),
                "files": [f for _, i in sorted(current.items()) for f in i.files],
                "landing": [{**e, "run_ids": sorted(e["run_ids"])} for _, e in sorted(landing.items())],
            }
        ]


@dataclass(frozen=True)
class _Rows:
    """Stands in for a table where a check reads only the row count (the whole partitioned mart's)."""

    num_rows: int


def _located(result: CheckResult, where: str) -> CheckResult:
    return CheckResult(result.name, False, f"partition {where}: {result.detail}", result.failing_rows)


def _all_present(index: SurveyIndex, present: set[str]) -> bool:
    return all(p["key"] in present for p in index.partitions.values())
