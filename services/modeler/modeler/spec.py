"""What a mart is: its inputs, its build function, its schema, key and checks (``MartSpec``), and what a build may
return besides the table: the input rows it could not use, for quarantine (``Built``), or raise when it has
nothing to build from (``NoInputRows``).

The registry (``modeler.registry``) lists the marts; the rebuild (``modeler.build``) builds, checks and publishes
them. Both import from here, and so do the domain packages that declare marts of their own (``modeler.catalunya``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from datalake.layout import MARTS as MARTS_LAYER
from datalake.layout import mart_prefix
from modeler.checks import Check

LINEAGE_PREFIX = f"{MARTS_LAYER}/_lineage/"
Inputs = Mapping[str, pa.Table]


class NoInputRows(LookupError):
    """The mart's inputs hold no rows it can be built from; the mart is skipped, its previous version kept."""


@dataclass(frozen=True)
class Rejected:
    """Input rows a mart could not use, with why: they go to ``quarantine/{source}/{dataset}/`` and are announced.

    ``rows`` holds the rows as read (staging columns) plus ``reason``; ``rows_in`` is how many rows of the dataset
    the mart read, so the share rejected can be told.
    """

    source: str
    dataset: str
    rows: pa.Table
    rows_in: int


@dataclass(frozen=True)
class Built:
    """A build's table and the rows it rejected, per dataset (a dataset with none rejected is listed too, with an
    empty table, so an earlier quarantine of it is cleared)."""

    table: pa.Table
    rejected: tuple[Rejected, ...] = ()


BuildFn = Callable[[Inputs, pa.Table | None], "pa.Table | Built"]


@dataclass(frozen=True)
class Input:
    name: str
    layer: Literal["staging", "mart"]
    select: Callable[[pa.Table], pa.Table] | None = None
    selection: str = "all rows"
    required: bool = True
    # Which staging files to read at all (by key and Hive partition), before ``select`` narrows their rows: a mart
    # of one file never reads, nor rebuilds for, the rest of a large table.
    files: Callable[[str, Mapping[str, str]], bool] | None = None

    @property
    def is_family(self) -> bool:
        return self.name.endswith("*")

    def matches(self, table: str) -> bool:
        return fnmatch.fnmatchcase(table, self.name) if self.is_family else table == self.name


def staging(
    name: str,
    select: Callable[[pa.Table], pa.Table] | None = None,
    selection: str = "all rows",
    required: bool = True,
    files: Callable[[str, Mapping[str, str]], bool] | None = None,
) -> Input:
    return Input(name=name, layer="staging", select=select, selection=selection, required=required, files=files)


def mart(name: str, required: bool = True) -> Input:
    return Input(name=name, layer="mart", required=required)


@dataclass(frozen=True)
class MartSpec:
    name: str
    kind: Literal["dimensions", "facts", "aggregates", "reports"]
    description: str
    inputs: tuple[Input, ...]
    build: BuildFn
    schema: pa.Schema
    key: tuple[str, ...]
    checks: tuple[Check, ...]
    version: str = "1"
    incremental: bool = False  # the build receives the published version (facts that accumulate snapshots)
    glue_table: str = field(default="")
    # A partitioned mart (``modeler.partitions``): one object per (survey, year), built one partition at a time
    # from its first input; ``scatter_schema`` names the staging columns it reads (a staging input only).
    partition_by: tuple[str, ...] = ()
    scatter_schema: pa.Schema | None = None
    # Built from its (one) staging file in chunks of whole values of this column (``modeler.chunked``): the build
    # computes per value (e.g. per series), so memory holds a chunk, not the file.
    chunk_by: str | None = None

    @property
    def partitioned(self) -> bool:
        return bool(self.partition_by)

    @property
    def prefix(self) -> str:
        return mart_prefix(self.kind, self.name)

    @property
    def data_key(self) -> str:
        """The mart's one Parquet object: a fixed name, replaced atomically by a single PUT (a partitioned mart has
        one per partition under its folder: ``modeler.partitions.partition_key``)."""
        return f"{self.prefix}{self.name}.parquet"

    @property
    def lineage_key(self) -> str:
        # Outside the mart's folder: Athena reads every object under a table's location, so nothing but the
        # mart's Parquet may live there.
        return f"{LINEAGE_PREFIX}marts/{self.name}.json"

    @property
    def table_name(self) -> str:
        return self.glue_table or self.name
