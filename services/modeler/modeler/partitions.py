"""Partitioned marts: one Parquet object per partition (``survey=pr/year=2024``), each replaced on its own.

A fact that grows with every survey cannot be one object rebuilt in memory: at 10 million observations the
modeler would need more than its 1,536 MB. A partitioned mart is built partition by partition, so memory holds the
largest partition, and a build writes only what changed:

* **Work by survey.** Each survey's input fingerprint (its staging files, or the upstream mart's partitions of
  that survey) is kept in the survey's index (``marts/_lineage/partitions/{mart}/survey={s}.json``); a survey whose
  fingerprint did not change is not read at all.
* **Scatter, then build.** A changed survey's staging rows are read file by file, row group by row group, and
  spooled by year (``/tmp``, Arrow IPC, zstd); then each year is built alone from its spool.
* **Rewrite only what changed.** A partition whose bytes equal the published ones is not written again; a year that
  disappeared is deleted. Each partition is one PUT at a fixed key (``.../survey=pr/year=2024/{mart}.parquet``), so
  a reader sees its old or its new version, never half of one.
* **Checked before anything is written.** Every partition passes the mart's checks and the whole mart its row-count
  check before the first PUT; a failure keeps every published partition as it was.

The partition columns live in the path, not in the files (Hive's layout, which Athena's partition projection reads);
readers here (``PartitionedTable``) add them back, so a partitioned mart reads like the single table it replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeler.adapters import LakeMarts, StagingFile, parquet_bytes, sha256_hex
from modeler.spec import LINEAGE_PREFIX, MartSpec

SCATTER_BATCH_ROWS = 1 << 17
PARTITION_YEAR = "year"
PARTITION_GROUP = "survey"


def partition_key(spec: MartSpec, survey: str, year: int) -> str:
    return f"{spec.prefix}{PARTITION_GROUP}={survey}/{PARTITION_YEAR}={year}/{spec.name}.parquet"


def index_key(spec: MartSpec, survey: str) -> str:
    """Where a survey's partitions are recorded (outside the mart's folder, which Athena reads whole)."""
    return f"{LINEAGE_PREFIX}partitions/{spec.name}/{PARTITION_GROUP}={survey}.json"


@dataclass
class SurveyIndex:
    """A survey's published partitions: year -> ``{key, sha, rows, version_id}``, and what they were built from."""

    survey: str
    fingerprint: str = ""
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    landing: list[dict[str, Any]] = field(default_factory=list)  # the landing objects behind the survey's rows
    files: list[dict[str, str]] = field(default_factory=list)  # the staging files read

    @property
    def rows(self) -> int:
        return sum(int(p["rows"]) for p in self.partitions.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "survey": self.survey,
            "fingerprint": self.fingerprint,
            "partitions": {str(y): p for y, p in sorted(self.partitions.items())},
            "landing": self.landing,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> SurveyIndex:
        return cls(
            survey=document["survey"],
            fingerprint=document.get("fingerprint", ""),
            partitions={int(y): p for y, p in document.get("partitions", {}).items()},
            landing=list(document.get("landing", [])),
            files=list(document.get("files", [])),
        )


class PartitionIndex:
    """The survey indexes of one partitioned mart."""

    def __init__(self, lake: LakeMarts, spec: MartSpec) -> None:
        self.lake = lake
        self.spec = spec
        self._cache: dict[str, SurveyIndex | None] = {}

    def surveys(self) -> list[str]:
        prefix = f"{LINEAGE_PREFIX}partitions/{self.spec.name}/{PARTITION_GROUP}="
        return sorted(info.key[len(prefix) : -len(".json")] for info in self.lake.store.list(prefix))

    def get(self, survey: str) -> SurveyIndex | None:
        if survey not in self._cache:
            document = self.lake.get_json(index_key(self.spec, survey))
            self._cache[survey] = SurveyIndex.from_json(document) if document is not None else None
        return self._cache[survey]

    def put(self, index: SurveyIndex) -> None:
        self.lake.put(
            index_key(self.spec, index.survey), json.dumps(index.to_json(), indent=1).encode(), "application/json"
        )
        self._cache[index.survey] = index

    def delete(self, survey: str) -> None:
        self.lake.store.delete(index_key(self.spec, survey))
        self._cache[survey] = None

    def all(self) -> dict[str, SurveyIndex]:
        found = {}
        for survey in self.surveys():
            index = self.get(survey)
            if index is not None:
                found[survey] = index
        return found


def content_sha256(indexes: Mapping[str, SurveyIndex]) -> str:
    """One hash for the whole partitioned mart: every partition's key and content hash."""
    text = "\n".join(
        f"{p['key']}|{p['sha']}" for survey in sorted(indexes) for _, p in sorted(indexes[survey].partitions.items())
    )
    return hashlib.sha256(text.encode()).hexdigest()


class PartitionedTable:
    """A published partitioned mart, read partition by partition, with its partition columns added back."""

    def __init__(self, lake: LakeMarts, spec: MartSpec, indexes: Mapping[str, SurveyIndex]) -> None:
        self.lake = lake
        self.spec = spec
        self.indexes = dict(indexes)

    @property
    def num_rows(self) -> int:
        return sum(index.rows for index in self.indexes.values())

    def partitions(self, years: Callable[[int], bool] | None = None) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            (survey, year, entry)
            for survey, index in sorted(self.indexes.items())
            for year, entry in sorted(index.partitions.items())
            if years is None or years(year)
        ]

    def years(self) -> list[int]:
        return sorted({year for _, year, _ in self.partitions()})

    def read_partition(self, survey: str, year: int, columns: list[str] | None = None) -> pa.Table:
        entry = self.indexes[survey].partitions[year]
        stored = [c for c in (columns or self.spec.schema.names) if c not in (PARTITION_GROUP, PARTITION_YEAR)]
        body = self.lake.store.get_bytes(entry["key"], entry.get("version_id"))
        table = pq.read_table(pa.BufferReader(body), columns=stored, use_threads=False)
        return with_partition_columns(table, survey, year, columns or self.spec.schema.names)

    def scan(self, columns: list[str] | None = None, years: Callable[[int], bool] | None = None) -> Iterator[pa.Table]:
        """Every partition in turn (memory holds one)."""
        for survey, year, _ in self.partitions(years):
            yield self.read_partition(survey, year, columns)

    def read(self, columns: list[str] | None = None, years: Callable[[int], bool] | None = None) -> pa.Table:
        """The partitions (of ``years``) as one table: only where the caller knows the selection is small."""
        tables = list(self.scan(columns, years))
        if not tables:
            return self.spec.schema.empty_table().select(columns or self.spec.schema.names)
        return pa.concat_tables(tables)


def with_partition_columns(table: pa.Table, survey: str, year: int, order: list[str]) -> pa.Table:
    """A partition's rows with ``survey`` and ``year`` put back as columns, in ``order``."""
    n = table.num_rows
    values = {PARTITION_GROUP: text_column(survey, n), PARTITION_YEAR: pa.array(np.full(n, year, dtype=np.int32))}
    arrays = [values[name] if name in values else table.column(name) for name in order]
    return pa.Table.from_arrays(arrays, names=list(order))


def text_column(value: str, length: int) -> pa.Array:
    return pc.fill_null(pa.nulls(length, pa.string()), pa.scalar(value, pa.string()))


def partition_body(spec: MartSpec, table: pa.Table) -> bytes:
    """A partition's Parquet bytes: the mart's columns without the partition columns (they are in the path)."""
    stored = [c for c in spec.schema.names if c not in (PARTITION_GROUP, PARTITION_YEAR)]
    return parquet_bytes(table.select(stored))


# ----------------------------------------------------------------------------------------------------------------
# Scattering staging rows by year
# ----------------------------------------------------------------------------------------------------------------

SCATTER_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


class YearSpools:
    """Rows spooled to one compressed Arrow IPC file per year, in a temporary folder, then read back one year at a
    time."""

    def __init__(self, schema: pa.Schema, directory: str | None = None) -> None:
        self.schema = schema
        self.folder = tempfile.mkdtemp(prefix="scatter-", dir=directory)
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Append rows, split by their ``year`` (null years are kept under year 0, for the checks to refuse)."""
        if not table.num_rows:
            return
        table = table.select(self.schema.names).cast(self.schema)
        years = pc.fill_null(table.column(PARTITION_YEAR), 0).to_numpy()
        order = np.argsort(years, kind="stable")
        ordered = years[order]
        table = table.take(pa.array(order))
        cuts = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist(), len(ordered)]
        for start, end in zip(cuts, cuts[1:], strict=False):
            year = int(ordered[start])
            writer = self._writers.get(year)
            if writer is None:
                path = os.path.join(self.folder, f"{year}.arrows")
                writer = self._writers[year] = pa.ipc.new_stream(path, self.schema, options=SCATTER_OPTIONS)
            writer.write_table(table.slice(start, end - start))
        self.rows += table.num_rows

    def years(self) -> list[int]:
        return sorted(self._writers)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def read(self, year: int) -> pa.Table:
        with pa.ipc.open_stream(os.path.join(self.folder, f"{year}.arrows")) as reader:
            return reader.read_all()

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def scatter_staging(
    lake: LakeMarts, files: list[StagingFile], schema: pa.Schema, directory: str | None = None
) -> tuple[YearSpools, pa.Table]:
    """Every row of ``files`` (their Hive partition values as columns) spooled by year; and the rows' lineage counts
    (``_source``, ``_run_id``, rows), for the landing objects behind them.

    A file is streamed to a local temporary file and read row group by row group, so memory holds one batch.
    """
    spools = YearSpools(schema, directory)
    lineage: list[pa.Table] = []
    try:
        for f in files:
            handle, path = tempfile.mkstemp(suffix=".parquet", dir=directory)
            os.close(handle)
            try:
                lake.download(f.key, path)
                parquet = pq.ParquetFile(path)
                wanted = [c for c in schema.names if c in parquet.schema_arrow.names]
                for batch in parquet.iter_batches(batch_size=SCATTER_BATCH_ROWS, columns=wanted, use_threads=False):
                    table = pa.Table.from_batches([batch])
                    for column, value in f.partition.items():
                        if column not in table.column_names:
                            table = table.append_column(column, text_column(value, table.num_rows))
                    spools.write(table)
                    if "_source" in table.column_names and "_run_id" in table.column_names:
                        lineage.append(
                            table.group_by(["_source", "_run_id"], use_threads=False).aggregate([([], "count_all")])
                        )
                parquet.close()
            finally:
                os.unlink(path)
    except BaseException:
        spools.discard()
        raise
    spools.close()
    counts = pa.concat_tables(lineage) if lineage else pa.table({"_source": [], "_run_id": [], "count_all": []})
    return spools, counts


def landing_from_counts(counts: pa.Table) -> list[dict[str, Any]]:
    """``[{object, run_ids, rows}]`` from (``_source``, ``_run_id``, ``count_all``) rows, as ``lineage`` lists them."""
    by_object: dict[str, dict[str, Any]] = {}
    for row in counts.to_pylist():
        if row["_source"] is None:
            continue
        entry = by_object.setdefault(str(row["_source"]), {"object": str(row["_source"]), "run_ids": set(), "rows": 0})
        if row["_run_id"] is not None:
            entry["run_ids"].add(row["_run_id"])
        entry["rows"] += row["count_all"]
    return [{**e, "run_ids": sorted(e["run_ids"])} for _, e in sorted(by_object.items())]


def sha_of(body: bytes) -> str:
    return sha256_hex(body)
