"""The rebuild: for each mart, in dependency order, decide, build, check, publish, record lineage.

* **Only what changed.** A mart's input fingerprint hashes its registry version, the (key, ETag, size) of every
  staging file it reads and the content hash of every mart it reads. Equal to the published fingerprint: the
  mart is not rebuilt. Staging file names are deterministic, so a duplicate ``dataset.staged`` delivery changes
  nothing and rebuilds nothing (this, not a per-message idempotency record, is what makes the modeler idempotent).
* **Quality gates.** Every check of the mart runs; one failure blocks its publication, keeps the previous version,
  records the failure and emits ``stage.failed`` naming the check. Marts that read a failed mart are skipped in
  this build (they keep their previous version too).
* **Atomic publication.** A mart is one Parquet object at a fixed key (``marts/{kind}/{name}/{name}.parquet``),
  replaced by a single PUT: S3 readers (Athena included, whose table location is the mart's folder) see the old
  object or the new one, never a mix; bucket versioning keeps every previous version. Identical bytes are not
  written again. The lineage document (``marts/_lineage/marts/{name}.json``, outside the table's folder, which
  Athena reads whole) follows the data object.
* **No overlap.** The whole rebuild runs under a lease lock in the state table (the function's reserved
  concurrency of 1 already serialises Lambda; the lock also covers manual invokes and local runs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from aws_lambda_powertools import Logger

from datalake.contracts import BuiltMart, DatasetStaged, MartsBuilt, QuarantinedRows, Source, StageFailed
from datalake.layout import quarantine_prefix
from modeler import lineage
from modeler.adapters import EventSink, LakeMarts, MartState, StagingFile, parquet_bytes, sha256_hex
from modeler.checks import CheckContext, run_checks
from modeler.chunked import build_in_chunks
from modeler.registry import LINEAGE_PREFIX, Input, MartSpec, in_build_order
from modeler.registry import MARTS as REGISTRY
from modeler.spec import Built, NoInputRows, Rejected

logger = Logger(child=True)

Status = Literal["published", "same_content", "unchanged", "skipped", "failed"]


@dataclass
class MartOutcome:
    name: str
    status: Status
    reason: str = ""
    rows: int | None = None
    key: str = ""
    check: str | None = None


@dataclass
class BuildReport:
    run_id: str
    outcomes: list[MartOutcome] = field(default_factory=list)
    quarantined: list[QuarantinedRows] = field(default_factory=list)  # source rows the marts could not use

    def by_status(self, status: Status) -> list[MartOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def counts(self) -> dict[str, int]:
        statuses = ("published", "same_content", "unchanged", "skipped", "failed")
        return {s: len(self.by_status(s)) for s in statuses}  # type: ignore[arg-type]


class QualityCheckFailed(RuntimeError):
    """A mart failed a quality check (reported as stage.failed, never raised out of the rebuild)."""


def files_fingerprint(files: Sequence[StagingFile]) -> str:
    text = "\n".join(f"{f.key}|{f.etag}|{f.size}" for f in sorted(files, key=lambda f: f.key))
    return hashlib.sha256(text.encode()).hexdigest()


def input_fingerprint(spec: MartSpec, staging: dict[str, list[StagingFile]], marts: dict[str, str]) -> str:
    document = {
        "mart": spec.name,
        "version": spec.version,
        "staging": {name: files_fingerprint(files) for name, files in sorted(staging.items())},
        "marts": dict(sorted(marts.items())),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


EXAMPLES = 5


def quarantine_document(mart: str, rejected: Rejected, run_id: str, built_at: str) -> dict[str, Any]:
    """The ``reason.json`` beside quarantined rows: how many of how many, each reason's count, and examples."""
    rows = rejected.rows.num_rows
    reasons: dict[str, int] = {}
    examples = []
    columns = rejected.rows.column_names
    for row in rejected.rows.select([c for c in ("reason", "example") if c in columns]).to_pylist():
        reason = row.get("reason") or "unknown"
        reasons[reason] = reasons.get(reason, 0) + 1
        if len(examples) < EXAMPLES:
            examples.append(f"{row.get('example')}: {reason}")
    if rows:
        shown = "; ".join(examples[:3])
        summary = f"{rows:,} of {rejected.rows_in:,} rows not used by {mart} (quarantined), e.g. {shown}"
    else:
        summary = f"none of {rejected.rows_in:,} rows rejected by {mart}"
    return {
        "mart": mart,
        "source": rejected.source,
        "dataset": rejected.dataset,
        "manifest_key": landing_manifest(rejected.rows),
        "rows_in": rejected.rows_in,
        "rows_quarantined": rows,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "examples": examples,
        "summary": summary[:900],
        "run_id": run_id,
        "built_at": built_at,
    }


def landing_manifest(rows: pa.Table) -> str | None:
    """The landing manifest of staged rows, from their ``_source`` (a landing part: ``{stem}/part-00000.json``)."""
    if rows.num_rows == 0 or "_source" not in rows.column_names:
        return None
    source = rows["_source"][0].as_py()
    if not source or "/part-" not in source:
        return None
    return source.rsplit("/", 1)[0] + ".manifest.json"


def _sorted_by_key(table: pa.Table, spec: MartSpec) -> pa.Table:
    conformed = table.select(spec.schema.names).cast(spec.schema)
    return conformed.sort_by([(k, "ascending") for k in spec.key])


class Rebuild:
    """One rebuild of the registry's marts (the unit of work of one Lambda invocation)."""

    def __init__(
        self,
        lake: LakeMarts,
        state: MartState,
        events: EventSink,
        *,
        now: datetime,
        run_ids: Sequence[str],
        marts: Sequence[MartSpec] = REGISTRY,
    ) -> None:
        self.lake, self.state, self.events = lake, state, events
        self.now = now
        self.run_ids = sorted(set(run_ids))
        self.run_id = self.run_ids[-1]
        self.marts = in_build_order(marts)
        self.report = BuildReport(run_id=self.run_id)
        self._staging: dict[str, list[StagingFile]] = {}
        self._staging_tables: dict[tuple[str, ...], pa.Table] = {}
        self._built: dict[str, Any] = {}  # marts this build produced (a table, or a PartitionedTable)
        self._records: dict[str, dict[str, Any] | None] = {}
        self.documents: dict[str, dict[str, Any]] = {}

    # -- inputs ---------------------------------------------------------------------------------------------
    def published(self, name: str) -> dict[str, Any] | None:
        if name not in self._records:
            self._records[name] = self.state.published(name)
        return self._records[name]

    _published = published

    def built_table(self, name: str) -> Any:
        return self._built.get(name)

    def _staging_table(self, files: list[StagingFile]) -> pa.Table:
        keys = tuple(f.key for f in files)
        if keys not in self._staging_tables:
            self._staging_tables = {keys: self.lake.read_staging(files)}  # one table held at a time
        return self._staging_tables[keys]

    def _mart_table(self, name: str, record: dict[str, Any]) -> Any:
        """A mart this build reads: as built now, or as published (a partitioned one, lazily)."""
        table = self._built.get(name)
        if table is not None:
            return table
        from modeler.registry import by_name

        spec = by_name(self.marts).get(name)
        if spec is not None and spec.partitioned:
            from modeler.partitions import PartitionedTable, PartitionIndex

            return PartitionedTable(self.lake, spec, PartitionIndex(self.lake, spec).all())
        table = self.lake.read_mart(record["key"])
        if table is None:
            raise NoInputRows(f"mart {name} is recorded but its object {record['key']} is missing")
        return table

    def _resolve(self, spec: MartSpec) -> tuple[dict[str, list[StagingFile]], dict[str, dict[str, Any]], str | None]:
        """The staging tables and published marts a mart reads, or the reason it cannot be built now."""
        staging: dict[str, list[StagingFile]] = {}
        marts: dict[str, dict[str, Any]] = {}
        failed = {o.name for o in self.report.by_status("failed")}
        for source in spec.inputs:
            if source.layer == "staging":
                matched = {t: f for t, f in self._staging.items() if source.matches(t)}
                if source.files is not None:
                    matched = {t: [f for f in fs if source.files(f.key, f.partition)] for t, fs in matched.items()}
                    matched = {t: fs for t, fs in matched.items() if fs}
                if not matched and source.required:
                    return {}, {}, f"waiting for staging table {source.name}"
                staging.update(matched)
                continue
            if source.name in failed:
                return {}, {}, f"blocked: upstream mart {source.name} failed its checks"
            record = self._published(source.name)
            if record is None and source.required:
                return {}, {}, f"waiting for mart {source.name}"
            if record is not None:
                marts[source.name] = record
        return staging, marts, None

    def _load(self, spec: MartSpec, staging: dict[str, list[StagingFile]], marts: dict[str, dict[str, Any]]):
        """The mart's inputs as tables (staging after its selection) and their lineage entries."""
        return self.load_inputs(spec, spec.inputs, staging, marts)

    def load_inputs(
        self,
        spec: MartSpec,
        sources: Sequence[Input],
        staging: dict[str, list[StagingFile]],
        marts: dict[str, dict[str, Any]],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Some of the mart's inputs as tables (staging after its selection) and their lineage entries."""
        tables: dict[str, pa.Table] = {}
        entries: list[dict[str, Any]] = []
        for source in sources:
            if source.layer == "mart":
                if source.name in marts:
                    record = marts[source.name]
                    tables[source.name] = self._mart_table(source.name, record)
                    entries.append(
                        lineage.mart_input(source.name, record["key"], record["content_sha256"], record["rows"])
                    )
                continue
            for name in sorted(t for t in staging if source.matches(t)):
                selected = self._select(source, self._staging_table(staging[name]))
                tables[name] = selected
                files = {f.key: f.etag for f in staging[name]}
                entries.append(lineage.staging_input(name, source.selection, selected, files))
        return tables, entries

    @staticmethod
    def _select(source: Input, table: pa.Table) -> pa.Table:
        return source.select(table) if source.select is not None else table

    # -- one mart -------------------------------------------------------------------------------------------
    def sorted_by_key(self, result: pa.Table | Built, spec: MartSpec) -> pa.Table:
        return _sorted_by_key(result.table if isinstance(result, Built) else result, spec)

    def record(self, name: str, record: dict[str, Any], table: Any) -> None:
        """Record a mart as published (state table) and as built (for the marts that read it in this build)."""
        self.state.record_published(name, record)
        self._records[name] = record
        self._built[name] = table

    def build_mart(self, spec: MartSpec) -> MartOutcome:
        staging, marts, waiting = self._resolve(spec)
        if waiting:
            return MartOutcome(spec.name, "skipped", waiting)
        if spec.partitioned:
            from modeler.partitioned_build import PartitionedBuild

            return PartitionedBuild(self, spec).run(staging, marts)
        fingerprint = input_fingerprint(spec, staging, {n: r["content_sha256"] for n, r in marts.items()})
        previous = self._published(spec.name)
        if previous and previous.get("input_fingerprint") == fingerprint and self.lake.exists(spec.data_key):
            return MartOutcome(spec.name, "unchanged", "inputs unchanged", previous.get("rows"), spec.data_key)

        try:
            chunked = build_in_chunks(self, spec, staging, marts) if spec.chunk_by else None
            if chunked is not None:
                result, tables, inputs = chunked
            else:
                tables, inputs = self._load(spec, staging, marts)
                published_table = self.lake.read_mart(spec.data_key) if spec.incremental and previous else None
                result = spec.build(tables, published_table)
        except NoInputRows as exc:
            return MartOutcome(spec.name, "skipped", str(exc))
        built = result if isinstance(result, Built) else Built(result)
        table = _sorted_by_key(built.table, spec)

        context = CheckContext(previous_rows=previous.get("rows") if previous else None, inputs=tables)
        results = run_checks(spec.checks, table, context)
        failures = [r for r in results if not r.passed]
        if failures:
            return self.fail(spec, table.num_rows, failures)

        body = parquet_bytes(table)
        sha = sha256_hex(body)
        if previous and previous.get("content_sha256") == sha and self.lake.exists(spec.data_key):
            status: Status = "same_content"
            version_id = previous.get("version_id")
        else:
            put = self.lake.put(
                spec.data_key,
                body,
                "application/vnd.apache.parquet",
                metadata={"run-id": self.run_id, "content-sha256": sha, "record-count": str(table.num_rows)},
            )
            status, version_id = "published", put.version_id
            document = lineage.mart_document(
                name=spec.name,
                kind=spec.kind,
                key=spec.data_key,
                rows=table.num_rows,
                content_sha256=sha,
                version_id=version_id,
                built_at=self.now.isoformat(),
                run_ids=self.run_ids,
                input_fingerprint=fingerprint,
                inputs=inputs,
                checks=[r.as_dict() for r in results],
            )
            self.lake.put(spec.lineage_key, json.dumps(document, indent=1).encode(), "application/json")
            self.documents[spec.name] = document
        record = {
            "key": spec.data_key,
            "rows": table.num_rows,
            "content_sha256": sha,
            "version_id": version_id,
            "input_fingerprint": fingerprint,
            "built_at": self.now.isoformat(),
            "run_id": self.run_id,
        }
        quarantined = self._quarantine(spec, built.rejected, (previous or {}).get("quarantine") or {})
        if quarantined:
            record["quarantine"] = quarantined
        self.record(spec.name, record, table)
        reason = "content identical to the published version" if status == "same_content" else ""
        return MartOutcome(spec.name, status, reason, table.num_rows, spec.data_key)

    def _quarantine(
        self, spec: MartSpec, rejected: Sequence[Rejected], before: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Write the rows the mart rejected to ``quarantine/{source}/{dataset}/modeler/{mart}/`` (rows and reason),
        announce each dataset that has some, and return what the published record keeps of them.

        A dataset with nothing rejected writes nothing, unless an earlier build quarantined rows of it: then an
        empty quarantine replaces that one, so it does not outlive the rows. Identical contents are not written
        again (a rebuild over unchanged rejects writes and announces nothing).
        """
        kept: dict[str, dict[str, Any]] = {}
        for item in rejected:
            earlier = before.get(item.dataset) or {}
            rows = item.rows.num_rows
            if rows == 0 and not earlier.get("rows"):
                continue
            prefix = f"{quarantine_prefix(Source(item.source), item.dataset)}modeler/{spec.name}/"
            body = parquet_bytes(item.rows)
            sha = sha256_hex(body)
            kept[item.dataset] = {"key": f"{prefix}rows.parquet", "rows": rows, "rows_in": item.rows_in, "sha": sha}
            if earlier.get("sha") == sha:
                continue
            document = quarantine_document(spec.name, item, self.run_id, self.now.isoformat())
            self.lake.put(f"{prefix}rows.parquet", body, "application/vnd.apache.parquet")
            self.lake.put(
                f"{prefix}reason.json", json.dumps(document, indent=1, ensure_ascii=False).encode(), "application/json"
            )
            if rows:
                # told with the build's marts.built (the run summary lists it): the dataset itself was staged, and
                # the rest of it modelled, so this is no dataset outcome
                self.report.quarantined.append(
                    QuarantinedRows(
                        mart=spec.name,
                        source=Source(item.source),
                        dataset=item.dataset,
                        rows_in=item.rows_in,
                        rows_quarantined=rows,
                        reason=document["summary"],
                        quarantine_key=f"{prefix}rows.parquet",
                    )
                )
                logger.warning("rows quarantined", extra={"mart": spec.name, "dataset": item.dataset, "rows": rows})
        return kept

    def fail(self, spec: MartSpec, rows: int, failures: list) -> MartOutcome:
        reason = f"mart {spec.name} not published, previous version kept: " + "; ".join(
            f"{f.name}: {f.detail}" for f in failures
        )
        self.state.record_failure(
            spec.name,
            {
                "run_id": self.run_id,
                "at": self.now.isoformat(),
                "checks": [f.as_dict() for f in failures],
                "rows": rows,
            },
        )
        self.events.publish(
            StageFailed(
                run_id=self.run_id,
                dataset=spec.name,
                stage="modeler",
                reason=reason,
                error_type=QualityCheckFailed.__name__,
                check=failures[0].name,
                counts={
                    "rows": rows,
                    "failing_rows": failures[0].failing_rows,
                    "checks_failed": len(failures),
                },
                keys=[spec.prefix if spec.partitioned else spec.data_key],
            )
        )
        logger.warning("quality check failed", extra={"mart": spec.name, "checks": [f.as_dict() for f in failures]})
        key = spec.prefix if spec.partitioned else spec.data_key
        return MartOutcome(spec.name, "failed", reason, rows, key, failures[0].name)

    # -- the whole build ------------------------------------------------------------------------------------
    def run(self) -> BuildReport:
        self._staging = self.lake.staging_files()
        for spec in self.marts:
            outcome = self.build_mart(spec)
            self.report.outcomes.append(outcome)
            log = logger.warning if outcome.status == "skipped" else logger.info  # a report not built is a warning
            log("mart " + outcome.status, extra={"mart": spec.name, "reason": outcome.reason, "rows": outcome.rows})
        if self.documents:
            self._write_graph()
        return self.report

    def _write_graph(self) -> None:
        documents = []
        for spec in self.marts:
            document = self.documents.get(spec.name) or self.lake.get_json(spec.lineage_key)
            if document is not None:
                documents.append(document)
        graph = lineage.build_graph(documents)
        self.lake.put_text_if_changed(f"{LINEAGE_PREFIX}graph.json", json.dumps(graph, indent=1), "application/json")
        self.lake.put_text_if_changed(f"{LINEAGE_PREFIX}graph.mmd", lineage.to_mermaid(graph), "text/plain")
        self.lake.put_text_if_changed(f"{LINEAGE_PREFIX}graph.dot", lineage.to_dot(graph), "text/vnd.graphviz")


def rebuild_marts(
    staged: Sequence[DatasetStaged],
    lake: LakeMarts,
    state: MartState,
    events: EventSink,
    lease: AbstractContextManager[None],
    *,
    now: datetime,
    marts: Sequence[MartSpec] = REGISTRY,
) -> BuildReport:
    """Rebuild the marts whose inputs changed, under the rebuild lease, and announce the result.

    Parameters
    ----------
    staged: the ``dataset.staged`` events of the batch (their run ids go into the lineage and the events).
    lease: held for the whole rebuild (``datalake.lease.Lease.hold``), so two rebuilds never overlap.

    Returns
    -------
    The outcome of every mart: published, same_content, unchanged, skipped (with why) or failed (with the check).

    Raises
    ------
    datalake.lease.LeaseBusy
        When another rebuild holds the lease; nothing was built.
    datalake.lake.LakeError, datalake.state.StateError, datalake.events.PublishError
        On an AWS failure; the batch is retried, and the rebuild converges because publication is idempotent.
    """
    if not staged:
        raise ValueError("a rebuild needs at least one dataset.staged event")
    build = Rebuild(lake, state, events, now=now, run_ids=[e.run_id for e in staged], marts=marts)
    with lease:
        report = build.run()
    published = report.by_status("published")
    events.publish(
        MartsBuilt(
            run_id=report.run_id,
            marts=[BuiltMart(name=o.name, rows=o.rows or 0, key=o.key) for o in published],
            skipped=[o.name for o in report.outcomes if o.status != "published"],
            # a mart that could not be built (its inputs are missing or empty), as opposed to one already current
            skipped_reasons={o.name: o.reason or "inputs not ready" for o in report.outcomes if o.status == "skipped"},
            quarantined=report.quarantined,
            counts=report.counts,
            keys=[o.key for o in published],
        )
    )
    return report
