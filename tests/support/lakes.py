"""Comparing the contents of two lakes' marts and staging tables (values, not timestamps or bytes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

LINEAGE_COLUMNS = ("_source", "_ingested_at", "_run_id")


def mart_tables(lake_dir: Path) -> dict[str, Any]:
    """Every mart of a lake folder, as a pyarrow Table, by its key (the lineage documents are not marts)."""
    import pyarrow.parquet as pq

    marts = Path(lake_dir) / "marts"
    return {
        path.relative_to(lake_dir).as_posix(): pq.read_table(path, use_threads=False, partitioning=None)
        for path in sorted(marts.rglob("*.parquet"))
        if "_lineage" not in path.parts
    }


def staging_tables(lake_dir: Path) -> dict[str, Any]:
    """Every staging table of a lake folder without its lineage columns, rows sorted, by table name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables: dict[str, list[Any]] = {}
    staging = Path(lake_dir) / "staging"
    for path in sorted(staging.rglob("*.parquet")):
        if path.relative_to(staging).parts[0].endswith("_retired"):
            continue  # history, not current staging (its rows carry when they were retired)
        table = pq.read_table(path, use_threads=False, partitioning=None)
        keep = [c for c in table.column_names if c not in LINEAGE_COLUMNS]
        partitions = [p.split("=", 1) for p in path.relative_to(staging).parts[1:-1] if "=" in p]
        table = table.select(keep)
        for column, value in partitions:
            table = table.append_column(column, pa.array([value] * table.num_rows, pa.string()))
        tables.setdefault(path.relative_to(staging).parts[0], []).append(table)
    merged = {}
    for name, parts in tables.items():
        table = pa.concat_tables(parts, promote_options="permissive")
        merged[name] = table.sort_by([(c, "ascending") for c in table.column_names if _sortable(table, c)])
    return merged


def _sortable(table: Any, column: str) -> bool:
    import pyarrow as pa

    kind = table.schema.field(column).type
    return not (pa.types.is_nested(kind) or pa.types.is_dictionary(kind))


def table_differences(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> list[str]:
    """What differs between two sets of tables, in words; empty when their contents are equal."""
    found = []
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            found.append(f"{what} {name}: only in {'the first' if name in ours else 'the second'} lake")
            continue
        a, b = ours[name], theirs[name]
        if a.schema != b.schema:
            found.append(f"{what} {name}: schemas differ ({a.schema.names} vs {b.schema.names})")
        elif not a.equals(b):
            rows_a, rows_b = Counter(map(_row_key, a.to_pylist())), Counter(map(_row_key, b.to_pylist()))
            only_a, only_b = list((rows_a - rows_b).elements()), list((rows_b - rows_a).elements())
            found.append(
                f"{what} {name}: {a.num_rows} vs {b.num_rows} rows, {len(only_a)} only in the first, "
                f"{len(only_b)} only in the second; e.g. {only_a[:3]} vs {only_b[:3]}"
            )
    return found


def _row_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def mart_differences(lake: Path, reference: Path) -> list[str]:
    return table_differences(mart_tables(lake), mart_tables(reference), "mart")


def staging_differences(lake: Path, reference: Path) -> list[str]:
    return table_differences(staging_tables(lake), staging_tables(reference), "staging table")
