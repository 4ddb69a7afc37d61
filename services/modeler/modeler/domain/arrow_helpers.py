"""Arrow helpers the marts share: columns read whatever the staging wrote, first and newest rows per key, exact sums.

Pure: pyarrow only (no pandas, no AWS).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

MICRO = 1_000_000  # values are summed exactly, as integers in millionths


def _differs_from_previous(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a row's value differs from the previous row's (nulls compare equal to nulls); row 0 is True."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return pa.array([], pa.bool_())
    current, previous = array.slice(1), array.slice(0, len(array) - 1)
    null_mismatch = pc.not_equal(pc.is_null(current), pc.is_null(previous))
    changed = pc.fill_null(pc.not_equal(current, previous), null_mismatch)
    return pa.concat_arrays([pa.array([True]), changed])


def first_per_group(sorted_table: pa.Table, keys: Iterable[str]) -> pa.Table:
    """The first row of each run of equal keys in a table already sorted by those keys."""
    keys = list(keys)
    if sorted_table.num_rows == 0:
        return sorted_table
    mask = _differs_from_previous(sorted_table[keys[0]])
    for key in keys[1:]:
        mask = pc.or_(mask, _differs_from_previous(sorted_table[key]))
    return sorted_table.filter(mask)


def latest_rows(table: pa.Table, keys: Iterable[str], newest: str = "_ingested_at") -> pa.Table:
    """One row per natural key, the newest ingestion winning (the staging contract's rule, applied defensively)."""
    keys = list(keys)
    if newest not in table.column_names:
        return first_per_group(table.sort_by([(k, "ascending") for k in keys]), keys)
    ordered = table.sort_by([*((k, "ascending") for k in keys), (newest, "descending")])
    return first_per_group(ordered, keys)


def time_key(year: pa.Array | pa.ChunkedArray, period: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The dim_time key of a (year, period) pair, e.g. ``2025-Q01``."""
    return pc.binary_join_element_wise(pc.cast(year, pa.string()), period, "-")


def exact_micros(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(pc.round(pc.multiply(values, float(MICRO))), pa.int64())


def from_micros(micros: pa.ChunkedArray | pa.Array) -> pa.Array:
    # int64 -> float64 is exact below 2**53 and IEEE division is correctly rounded: the nearest double to the sum.
    return pc.divide(pc.cast(micros, pa.float64()), float(MICRO))


def text_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    column = table[name]
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def int32_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """An integer column from whatever the staging wrote (int or text such as "1988" or "-")."""
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.int32())])
    column = table[name]
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.int32())
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    numeric = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.int32())
