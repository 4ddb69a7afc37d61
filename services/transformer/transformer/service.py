"""Stage one committed landing: read its manifest and parts, validate, merge into staging, quarantine, report.

The parsers are pure (bls, datausa, socrata); this module wires them to the adapters. A payload that fails
wholesale (``PayloadRejected``) is quarantined and the landing counts as handled; AWS failures raise so the message
is retried and, in the end, dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aws_lambda_powertools import Logger
from pydantic import ValidationError

from datalake.contracts import (
    DatasetQuarantined,
    DatasetStaged,
    Manifest,
    ManifestPart,
    PipelineEvent,
    Source,
    StagedTable,
)
from datalake.layout import BLS_API_RESPONSES, bulk_mirror_key, parse_landing_key
from datalake.lease import Lease
from datalake.state import utc_stamp
from transformer import bls, datausa, socrata
from transformer.bulk_staging import ExistingRows, downloaded, merge_pieces
from transformer.domain import (
    REASON,
    ROW_COUNTS,
    Lineage,
    Parsed,
    PayloadRejected,
    RowCounts,
    merge_latest,
    rejected_schema_of,
    retire_missing,
)
from transformer.glue import GlueCatalog
from transformer.landing import LandingRef
from transformer.parquet_spool import ParquetSpool
from transformer.readers import Prefetched
from transformer.schemas import BLS_OBSERVATION, BLS_SERIES, POPULATION, TableSpec
from transformer.state_recorder import StateRecorder
from transformer.stores import (
    LandingReader,
    QuarantineStore,
    StagingStore,
    part_source,
    retired_record,
    retired_schema,
)

logger = Logger(child=True)

SNAPSHOT_GROUP = "snapshot"
MAX_REASONS_SHOWN = 3


class InvalidManifest(ValueError):
    """The object the notification names is not a valid manifest for its key: a producer bug, never staged."""


@dataclass
class Unit:
    """Rows for one staging group: a (table, partition, group) that lives in exactly one file.

    ``replace``: the input is a full snapshot of the group (a bulk file): keys it no longer holds leave the group
    (into the retired-rows record). Otherwise rows are upserted and the group keeps its history (the BLS API's
    windows, DataUSA).
    """

    spec: TableSpec
    partition: dict[str, str]
    group: str
    parsed: Parsed
    replace: bool = False


@dataclass
class Tally(RowCounts):
    partitions: set[str] = field(default_factory=set)

    def staged_table(self, name: str) -> StagedTable:
        return StagedTable(
            table=name,
            rows_in=self.rows_in,
            rows_written=self.rows_written,
            rows_quarantined=self.rows_quarantined,
            rows_retired=self.rows_retired,
            partitions=sorted(self.partitions),
        )


@dataclass
class Outcome:
    manifest_key: str
    run_id: str
    source: str
    dataset: str
    tables: dict[str, Tally] = field(default_factory=dict)
    staged_keys: list[str] = field(default_factory=list)
    quarantine_keys: list[str] = field(default_factory=list)
    failures: list[PayloadRejected] = field(default_factory=list)
    row_reasons: list[str] = field(default_factory=list)
    units_staged: int = 0
    stale: bool = False
    # staging group (its prefix + group name) -> its file now, None when the group was retired whole
    current_files: dict[str, str | None] = field(default_factory=dict)
    retired_keys: list[str] = field(default_factory=list)
    rejected: dict[str, list[pa.Table]] = field(default_factory=dict)  # rejected rows per table, for quarantine

    def tally(self, table: str) -> Tally:
        return self.tables.setdefault(table, Tally())

    @property
    def counts(self) -> dict[str, int]:
        return {k: sum(getattr(t, k) for t in self.tables.values()) for k in ROW_COUNTS}

    @property
    def table_counts(self) -> dict[str, dict[str, int]]:
        return {name: {k: getattr(t, k) for k in ROW_COUNTS} for name, t in sorted(self.tables.items())}

    @property
    def event_counts(self) -> dict[str, int]:
        """The totals, and each table's counts as ``{table}.{count}``."""
        detail = {f"{name}.{k}": v for name, counts in self.table_counts.items() for k, v in counts.items()}
        return {**self.counts, **detail}

    @property
    def status(self) -> str:
        if self.failures:
            return "partial" if self.units_staged else "quarantined"
        return "stale" if self.stale else "staged"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "manifest_key": self.manifest_key,
            "run_id": self.run_id,
            "source": self.source,
            "dataset": self.dataset,
            "counts": self.counts,
            "table_counts": self.table_counts,
            "tables": [t.staged_table(name).model_dump() for name, t in sorted(self.tables.items())],
            "staged_keys": self.staged_keys,
            "quarantine_keys": self.quarantine_keys,
            "failures": [{"reason": f.reason, "check": f.check, "part_key": f.part_key} for f in self.failures],
        }


@dataclass
class Ports:
    landing: LandingReader
    staging: StagingStore
    quarantine: QuarantineStore
    locks: Lease
    state: StateRecorder
    publish: Callable[[PipelineEvent], Any]
    glue: GlueCatalog | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


class TransformerService:
    """Stages committed landings through its ports.

    Parameters
    ----------
    ports: the adapters (``build_service`` wires them to AWS; tests and the benchmark pass their own).
    clock: now, in UTC (when a group's rows were retired, when the staging is recorded).
    temp_dir: where Parquet is spooled (the system's temporary folder by default).
    bulk_piece_bytes: how much of a bulk data file is staged at once (``bls.BULK_PIECE_BYTES``): it bounds memory,
        and never changes the bytes staged.
    """

    def __init__(
        self,
        ports: Ports,
        clock: Callable[[], datetime] = utc_now,
        temp_dir: str | None = None,
        bulk_piece_bytes: int = bls.BULK_PIECE_BYTES,
    ) -> None:
        self.ports = ports
        self.clock = clock
        self.temp_dir = temp_dir
        self.bulk_piece_bytes = bulk_piece_bytes

    # -- manifest ---------------------------------------------------------------------------------------------
    def landing_at(self, manifest_key: str) -> LandingRef | None:
        """The landing whose manifest is at ``manifest_key`` now (for a reprocess); None when it is absent.

        Raises
        ------
        datalake.lake.LakeError
            When S3 cannot be read (transient).
        """
        return self.ports.landing.landing_at(manifest_key)

    def read_manifest(self, landing: LandingRef) -> Manifest:
        """The manifest the notification names, checked against its own key.

        Raises
        ------
        InvalidManifest
            Not a valid Manifest, its source/dataset differ from the key's, a part lies outside the dataset's
            prefix (or, for a BLS series, outside the stored API responses), or a part selects another series.
        datalake.lake.LakeError
            When S3 cannot be read (transient).
        """
        raw = self.ports.landing.manifest_bytes(landing.key, landing.version_id)
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidManifest(f"{landing.key} is not a valid manifest: {exc}") from exc
        source, dataset = parse_landing_key(landing.key)
        if (manifest.source, manifest.dataset) != (source, dataset):
            raise InvalidManifest(
                f"{landing.key} holds a manifest for {manifest.source.value}/{manifest.dataset}, "
                f"not {source.value}/{dataset}"
            )
        prefix = f"landing/{source.value}/{dataset}/"
        # a BLS API series' parts are the coalesced responses it came from, stored once for all their series
        allowed = (prefix, BLS_API_RESPONSES) if source is Source.BLS_API else (prefix,)
        outside = [p.key for p in manifest.parts if not p.key.startswith(allowed)]
        if outside:
            raise InvalidManifest(f"{landing.key} lists parts outside {' or '.join(allowed)}: {outside[:3]}")
        selecting = [p for p in manifest.parts if p.select_series is not None]
        if selecting and source is not Source.BLS_API:
            raise InvalidManifest(f"{landing.key} selects a series in {selecting[0].key}: only BLS API parts do")
        foreign = [f"{p.key} ({p.select_series})" for p in selecting if p.select_series != dataset]
        if foreign:
            raise InvalidManifest(f"{landing.key} is the landing of {dataset} but selects {foreign[:3]}")
        return manifest

    # -- staging ----------------------------------------------------------------------------------------------
    def stage(self, landing: LandingRef, manifest: Manifest) -> Outcome:
        """Stage every part of a landing. See the module docstring for what raises and what is quarantined."""
        outcome = Outcome(landing.key, manifest.run_id, manifest.source.value, manifest.dataset)
        rejected = outcome.rejected
        try:
            if manifest.source is Source.SOCRATA:
                self._stage_snapshot(manifest, outcome)
            else:
                units = self._units(manifest, outcome)
                for unit in _combine(units):
                    outcome.tally(unit.spec.name).rows_in += unit.parsed.rows_in
                    if unit.parsed.rows_rejected:
                        rejected.setdefault(unit.spec.name, []).append(unit.parsed.rejected)
                        outcome.tally(unit.spec.name).rows_quarantined += unit.parsed.rows_rejected
                    self._merge(unit, manifest, outcome)
        except PayloadRejected as failure:
            outcome.failures.append(failure)
        self._quarantine(manifest, outcome, rejected)
        self._record(manifest, outcome)
        return outcome

    def _units(self, manifest: Manifest, outcome: Outcome) -> list[Unit]:
        if manifest.source is Source.BLS_API:
            return self._api_units(manifest)
        if manifest.source is Source.DATAUSA:
            return self._population_units(manifest)
        if manifest.source is Source.BLS_BULK:
            return self._bulk_units(manifest, outcome)
        raise InvalidManifest(f"no staging for source {manifest.source.value}")

    def _lineage(self, manifest: Manifest, source: str) -> Lineage:
        return Lineage(source=source, ingested_at=manifest.fetched.astimezone(UTC), run_id=manifest.run_id)

    def _data_parts(self, manifest: Manifest) -> list[ManifestPart]:
        parts = sorted(manifest.data_parts, key=lambda p: p.key)
        if not parts:
            raise PayloadRejected("the landing has no data part", check="landing.parts")
        return parts

    def _api_units(self, manifest: Manifest) -> list[Unit]:
        """One unit per part (a response, or a year window of the series): ``_combine`` merges the windows.

        A part is a whole v2 response, possibly holding up to 50 series; the landing's series is selected from it
        (``select_series``, checked by ``read_manifest`` to be the manifest's dataset).
        """
        series_id = manifest.dataset
        survey = bls.survey_of(series_id)
        units = []
        for part in self._data_parts(manifest):
            payload = self.ports.landing.read_part(part)
            parsed = bls.parse_api_response(
                payload, series_id, self._lineage(manifest, part_source(part)), _name(part), part.key
            )
            units.append(
                Unit(BLS_OBSERVATION, {"source_kind": "api", "survey": survey}, series_id, parsed.observations)
            )
            if parsed.series is not None:
                units.append(Unit(BLS_SERIES, {"survey": survey}, f"api-{series_id}", parsed.series))
        return units

    def _population_units(self, manifest: Manifest) -> list[Unit]:
        units = []
        for part in self._data_parts(manifest):
            payload = self.ports.landing.read_part(part)
            parsed = datausa.parse_population(
                payload, self._lineage(manifest, part_source(part)), _name(part), part.key
            )
            units.append(Unit(POPULATION, {}, manifest.dataset, parsed))
        return units

    def _bulk_units(self, manifest: Manifest, outcome: Outcome) -> list[Unit]:
        """Each changed data file is staged on its own; a bad file is quarantined without holding the others."""
        survey = manifest.dataset
        units: list[Unit] = []
        by_name = {_name(p): p for p in manifest.parts}
        for name, part in sorted(by_name.items()):
            if not bls.is_data_file(name, survey):
                continue
            try:
                if self._stage_bulk_data(manifest, part, name, survey, outcome):
                    continue
                stream = self.ports.landing.open_part(part)
                try:
                    parsed = bls.parse_bulk_observations(
                        stream, name, survey, self._lineage(manifest, part_source(part)), part.key
                    )
                    stream.verify()
                finally:
                    stream.close()
            except PayloadRejected as failure:
                outcome.failures.append(failure)
                continue
            units.append(Unit(BLS_OBSERVATION, {"source_kind": "bulk", "survey": survey}, name, parsed, replace=True))
        series_files = {f"{survey}.series", *(f"{survey}.{kind}" for kind in bls.MAPPING_FILES)}
        if series_files & by_name.keys():
            try:
                units.append(self._bulk_series_unit(manifest, survey, by_name))
            except PayloadRejected as failure:
                outcome.failures.append(failure)
        for change in manifest.changes:
            if change.action == "deleted" and bls.is_data_file(change.name, survey):
                self._retire_group(
                    BLS_OBSERVATION, {"source_kind": "bulk", "survey": survey}, change.name, manifest, outcome
                )
        ignored = sorted(n for n in by_name if not bls.is_data_file(n, survey) and n not in series_files)
        if ignored:
            logger.info("bulk files not staged (documentation or unused mappings)", extra={"files": ignored})
        return units

    def _stage_bulk_data(
        self, manifest: Manifest, part: ManifestPart, name: str, survey: str, outcome: Outcome
    ) -> bool:
        """Stage a bulk data file in pieces (``transformer.bulk_staging``); False when its rows are not grouped by
        series, to be staged whole instead (nothing was written).

        Raises
        ------
        PayloadRejected
            When the file fails as a whole.
        """
        spec, partition, group = BLS_OBSERVATION, {"source_kind": "bulk", "survey": survey}, name
        staging = self.ports.staging
        prefix = staging.prefix(spec, partition)
        with self.ports.locks.hold(f"{prefix}{group}"):
            files = staging.group_files(prefix, group)
            newest = staging.newest_ingestion(files)
            if newest is not None and newest > utc_stamp(manifest.fetched):
                logger.info("snapshot older than the staged one; not staged", extra={"group": group})
                outcome.stale = True
                return True
            lineage = self._lineage(manifest, part_source(part))
            retired_at = self.clock()
            stream = self.ports.landing.open_part(part)
            try:
                with downloaded(staging, files, self.temp_dir) as paths:
                    existing = ExistingRows(paths, spec.schema)
                    pieces = bls.iter_bulk_observations(stream, name, survey, lineage, part.key, self.bulk_piece_bytes)
                    try:
                        with Prefetched(pieces) as prefetched:
                            done = merge_pieces(
                                prefetched,
                                existing,
                                spec,
                                retired_schema(spec.schema),
                                self.temp_dir,
                                lambda rows: retired_record(rows, manifest.run_id, retired_at),
                            )
                    finally:
                        existing.close()
                stream.verify()
            except bls.NotGroupedBySeries as reason:
                logger.info(
                    "bulk file not grouped by series; staged whole", extra={"file": name, "reason": str(reason)}
                )
                return False
            finally:
                stream.close()
            try:
                result = staging.put(
                    spec, partition, group, done.staged, _file_metadata(manifest, outcome), existing=files
                )
                if done.retired is not None:
                    outcome.retired_keys.append(
                        staging.put_retired(spec, partition, group, done.retired, manifest.run_id)
                    )
            finally:
                done.discard()
        totals, tally = done.totals, outcome.tally(spec.name)
        tally.add(totals)
        if totals.rejected:
            outcome.rejected.setdefault(spec.name, []).extend(totals.rejected)
        outcome.current_files[f"{prefix}{group}"] = result.key
        if result.changed:
            tally.partitions.add(_partition_text(partition))
            outcome.staged_keys.append(result.key)
        outcome.units_staged += 1
        return True

    def _open_bulk(self, survey: str, name: str, by_name: dict[str, ManifestPart]) -> tuple[Any, str] | None:
        part = by_name.get(name)
        if part is not None:
            return self.ports.landing.open_part(part), part_source(part)
        return self.ports.landing.open_current(bulk_mirror_key(survey, name))

    def _bulk_series_unit(self, manifest: Manifest, survey: str, by_name: dict[str, ManifestPart]) -> Unit:
        mappings = {}
        for kind in bls.MAPPING_FILES:
            name = f"{survey}.{kind}"
            opened = self._open_bulk(survey, name, by_name)
            if opened is None:
                if survey == "pr":
                    raise PayloadRejected(
                        f"mapping file {name} is neither in the landing nor in the mirror", check="bulk.mapping"
                    )
                continue
            stream, _ = opened
            try:
                mappings[kind] = bls.parse_mapping(stream, name, stream.key)
                stream.verify()
            finally:
                stream.close()
        name = f"{survey}.series"
        opened = self._open_bulk(survey, name, by_name)
        if opened is None:
            raise PayloadRejected(f"{name} is neither in the landing nor in the mirror", check="bulk.series")
        stream, source = opened
        try:
            parsed = bls.parse_bulk_series(stream, name, survey, mappings, self._lineage(manifest, source), stream.key)
            stream.verify()
        finally:
            stream.close()
        return Unit(BLS_SERIES, {"survey": survey}, "bulk", parsed, replace=True)

    def _merge(self, unit: Unit, manifest: Manifest, outcome: Outcome) -> None:
        if not unit.parsed.valid.num_rows and not unit.replace:  # nothing to upsert: the group stays as it is
            outcome.units_staged += 1
            return
        staging = self.ports.staging
        prefix = staging.prefix(unit.spec, unit.partition)
        tally = outcome.tally(unit.spec.name)
        with self.ports.locks.hold(f"{prefix}{unit.group}"):
            files = staging.group_files(prefix, unit.group)
            if unit.replace:
                newest = staging.newest_ingestion(files)
                if newest is not None and newest > utc_stamp(manifest.fetched):
                    logger.info("snapshot older than the staged one; not staged", extra={"group": unit.group})
                    outcome.stale = True
                    return
            existing = staging.read(files, unit.spec.schema)
            merged = merge_latest(existing, unit.parsed.valid, unit.spec)
            table, retired = merged.table, None
            if unit.replace:
                table, retired = retire_missing(merged.table, unit.parsed, unit.spec)
            result = staging.write(
                unit.spec, unit.partition, unit.group, table, _file_metadata(manifest, outcome), existing=files
            )
            if retired is not None and retired.num_rows:
                outcome.retired_keys.append(
                    staging.write_retired(unit.spec, unit.partition, unit.group, retired, manifest.run_id)
                )
                tally.rows_retired += retired.num_rows
        tally.rows_written += merged.rows_written
        tally.rows_new += merged.rows_new
        tally.rows_revised += merged.rows_revised
        outcome.current_files[f"{prefix}{unit.group}"] = result.key
        if result.changed:
            tally.partitions.add(_partition_text(unit.partition))
            outcome.staged_keys.append(result.key)
        outcome.units_staged += 1

    def _retire_group(
        self, spec: TableSpec, partition: dict[str, str], group: str, manifest: Manifest, outcome: Outcome
    ) -> None:
        """A snapshot removed upstream (a bulk file deleted on proof): all its rows leave current staging."""
        staging = self.ports.staging
        prefix = staging.prefix(spec, partition)
        with self.ports.locks.hold(f"{prefix}{group}"):
            files = staging.group_files(prefix, group)
            existing = staging.read(files, spec.schema)
            if existing is not None and existing.num_rows:
                outcome.retired_keys.append(staging.write_retired(spec, partition, group, existing, manifest.run_id))
                outcome.tally(spec.name).rows_retired += existing.num_rows
            for key in files:
                staging.lake.delete(key)
        if files:
            outcome.tally(spec.name).partitions.add(_partition_text(partition))
        outcome.current_files[f"{prefix}{group}"] = None

    def _stage_snapshot(self, manifest: Manifest, outcome: Outcome) -> None:
        """A Socrata landing replaces its table, streamed page by page; an older landing than staging's is skipped."""
        metadata_parts = [p for p in manifest.parts if p.role == "metadata"]
        if len(metadata_parts) != 1:
            raise PayloadRejected(
                f"a Socrata landing needs exactly one metadata part, found {len(metadata_parts)}",
                check="landing.metadata",
            )
        meta = metadata_parts[0]
        plan = socrata.plan_from_metadata(self.ports.landing.read_part(meta), manifest.dataset, _name(meta), meta.key)
        spec = plan.spec
        staging = self.ports.staging
        prefix = staging.prefix(spec, {})
        tally = outcome.tally(spec.name)
        with self.ports.locks.hold(f"{prefix}{SNAPSHOT_GROUP}"):
            current = staging.group_files(prefix, SNAPSHOT_GROUP)
            newest = staging.newest_ingestion(current)
            if newest is not None and newest > utc_stamp(manifest.fetched):
                logger.info("landing older than the staged snapshot; not staged", extra={"staged": newest})
                outcome.stale = True
                return
            staged = ParquetSpool(spec.schema, self.temp_dir, background=True)
            rejects = ParquetSpool(socrata_rejects_schema(plan), self.temp_dir)
            try:
                for part in self._data_parts(manifest):
                    self._stream_part(part, plan, manifest, staged, rejects, tally)
                staged_file, rejected_file = staged.finish(), rejects.finish()
                result = staging.put(
                    spec, {}, SNAPSHOT_GROUP, staged_file, _file_metadata(manifest, outcome), existing=current
                )
                if rejected_file.rows:
                    prefix_q = self.ports.quarantine.prefix(manifest, outcome.manifest_key)
                    key = self.ports.quarantine.put_rows(prefix_q, spec.name, rejected_file)
                    outcome.quarantine_keys.append(key)
                    outcome.row_reasons.extend(_top_reasons_file(rejected_file.path))
            finally:
                staged.discard()
                rejects.discard()
        tally.rows_written += staged_file.rows
        tally.rows_new += staged_file.rows
        outcome.current_files[f"{prefix}{SNAPSHOT_GROUP}"] = result.key
        if result.changed:
            tally.partitions.add("")
            outcome.staged_keys.append(result.key)
        outcome.units_staged += 1
        if self.ports.glue is not None:
            self.ports.glue.ensure_table(
                spec, f"Socrata dataset {manifest.dataset} (snapshot), typed from its metadata"
            )

    def _stream_part(
        self,
        part: ManifestPart,
        plan: socrata.SocrataPlan,
        manifest: Manifest,
        staged: ParquetSpool,
        rejects: ParquetSpool,
        tally: Tally,
    ) -> None:
        lineage = self._lineage(manifest, part_source(part))
        stream = self.ports.landing.open_part(part)
        record = 0
        try:
            pieces = socrata.iter_row_pieces(stream, plan.row_type, _name(part), part.key)
            with Prefetched(pieces) as prefetched:  # the next piece is read and parsed while this one is written
                for elements in prefetched:
                    socrata.check_fields(elements, plan, _name(part), part.key)
                    good, bad = socrata.cast_rows(elements, plan, lineage, record)
                    staged.write(good)
                    rejects.write(bad)
                    record += len(elements)
                    tally.rows_in += len(elements)
                    tally.rows_quarantined += bad.num_rows
            stream.verify()
        finally:
            stream.close()

    # -- quarantine, state and events -------------------------------------------------------------------------
    def _quarantine(self, manifest: Manifest, outcome: Outcome, rejected: dict[str, list[pa.Table]]) -> None:
        store = self.ports.quarantine
        prefix = store.prefix(manifest, outcome.manifest_key)
        for table_name, tables in sorted(rejected.items()):
            rows = pa.concat_tables(tables, promote_options="permissive")
            outcome.quarantine_keys.append(store.write_rows(prefix, table_name, rows))
            outcome.row_reasons.extend(_top_reasons(rows))
        if outcome.failures:
            first = outcome.failures[0]
            document = {
                "manifest_key": outcome.manifest_key,
                "source": outcome.source,
                "dataset": outcome.dataset,
                "run_id": outcome.run_id,
                "reason": first.reason,
                "check": first.check,
                "part_key": first.part_key,
                "failures": [{"reason": f.reason, "check": f.check, "part_key": f.part_key} for f in outcome.failures],
                "landing": "untouched: the raw payload stays in landing/ as received",
            }
            outcome.quarantine_keys.insert(0, store.write_reason(prefix, document))

    def _record(self, manifest: Manifest, outcome: Outcome) -> None:
        now = self.clock()
        counts = outcome.counts
        events: list[PipelineEvent] = []
        common = {"run_id": manifest.run_id, "source": manifest.source, "dataset": manifest.dataset}
        if outcome.units_staged or not outcome.failures:  # also a landing with nothing to stage (a doc file)
            self.ports.state.staged(manifest, outcome.manifest_key, counts, now, outcome.current_files)
            events.append(
                DatasetStaged(
                    **common,
                    manifest_key=outcome.manifest_key,
                    tables=[t.staged_table(name) for name, t in sorted(outcome.tables.items())],
                    counts=outcome.event_counts,
                    keys=outcome.staged_keys,
                )
            )
        if outcome.quarantine_keys:
            reasons = [f.reason for f in outcome.failures]
            if counts["rows_quarantined"]:
                shown = "; ".join(outcome.row_reasons[:MAX_REASONS_SHOWN])
                reasons.append(f"{counts['rows_quarantined']} of {counts['rows_in']} rows rejected: {shown}")
            reason = " | ".join(reasons)
            self.ports.state.quarantined(manifest, outcome.manifest_key, reason, outcome.quarantine_keys[0], now)
            events.append(
                DatasetQuarantined(
                    **common,
                    manifest_key=outcome.manifest_key,
                    reason=reason[:4000],
                    quarantine_key=outcome.quarantine_keys[0],
                    counts=outcome.event_counts,
                    keys=outcome.quarantine_keys,
                )
            )
        for event in events:
            self.ports.publish(event)


def socrata_rejects_schema(plan: socrata.SocrataPlan) -> pa.Schema:
    return rejected_schema_of(plan.raw_schema)


def _combine(units: list[Unit]) -> list[Unit]:
    """Units of one group (several parts of one landing) are merged as one input."""
    grouped: dict[tuple[str, str, str], list[Unit]] = {}
    for unit in units:
        grouped.setdefault((unit.spec.name, _partition_text(unit.partition), unit.group), []).append(unit)
    combined = []
    for same in grouped.values():
        if len(same) == 1:
            combined.append(same[0])
            continue
        first = same[0]
        if first.replace:
            raise PayloadRejected(f"a landing names the snapshot {first.group} twice", check="landing.parts")
        parsed = Parsed(
            valid=pa.concat_tables([u.parsed.valid for u in same]),
            rejected=pa.concat_tables([u.parsed.rejected for u in same], promote_options="permissive"),
            rows_in=sum(u.parsed.rows_in for u in same),
        )
        combined.append(Unit(first.spec, first.partition, first.group, parsed))
    return combined


def _name(part: ManifestPart) -> str:
    return part.name or part.key.rsplit("/", 1)[-1]


def _partition_text(partition: dict[str, str]) -> str:
    return "/".join(f"{k}={v}" for k, v in partition.items())


def _file_metadata(manifest: Manifest, outcome: Outcome) -> dict[str, str]:
    return {
        "ingested-at": utc_stamp(manifest.fetched),
        "run-id": manifest.run_id,
        "manifest-key": outcome.manifest_key,
    }


def _top_reasons(rejected: pa.Table) -> list[str]:
    counts = pc.value_counts(rejected.column(REASON).combine_chunks()).to_pylist()
    counts.sort(key=lambda c: (-c["counts"], c["values"] or ""))
    return [f"{c['values']} ({c['counts']})" for c in counts[:MAX_REASONS_SHOWN]]


def _top_reasons_file(path: str) -> list[str]:
    return _top_reasons(pq.read_table(path, columns=[REASON], use_threads=False))


def build_service(settings: Any) -> TransformerService:
    """The service wired to AWS from a validated ``TransformerSettings``."""
    from datalake.events import publish_event
    from datalake.lake import LakeStore
    from datalake.state import StateStore

    lake = LakeStore(settings.lake_bucket)
    ports = Ports(
        landing=LandingReader(lake),
        staging=StagingStore(lake),
        quarantine=QuarantineStore(lake),
        locks=Lease(settings.state_table),
        state=StateRecorder(StateStore(settings.state_table)),
        publish=lambda event: publish_event(event, settings.pipeline_topic_arn),
        glue=GlueCatalog(settings.glue_database, settings.lake_bucket) if settings.glue_database else None,
    )
    return TransformerService(ports)
