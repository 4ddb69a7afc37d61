"""Transformer domain: pure, vectorised Table -> Table functions shared by every source.

No boto3, no environment, no Powertools. Validation works on whole Arrow columns (pyarrow.compute); Python only
ever loops over columns, checks or distinct values, never over rows.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transformer.schemas import INGESTED_AT, TableSpec

NUMBER_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
REASON = "_reason"
RECORD = "_record"
SOURCE = "_source"
_ORIGIN = "__origin"
_NULL_TEXT = pa.scalar(None, pa.string())


class PayloadRejected(Exception):  # noqa: N818 - a permanent outcome, not an error to retry
    """A payload that fails wholesale (not JSON, an HTML page, a changed schema, a hash mismatch).

    It is quarantined whole and the landing counts as handled: retrying cannot make it valid.
    """

    def __init__(self, reason: str, check: str, part_key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.check = check
        self.part_key = part_key


@dataclass(frozen=True)
class Lineage:
    source: str  # the landing object key, with ``?versionId=`` for a mirrored file
    ingested_at: datetime  # the manifest's created_at (UTC)
    run_id: str


@dataclass
class Parsed:
    """One parsed input: the valid rows in the table's schema, the rejected rows raw with their reason."""

    valid: pa.Table
    rejected: pa.Table
    rows_in: int

    @property
    def rows_rejected(self) -> int:
        return self.rejected.num_rows


# ----------------------------------------------------------------------------------------------------------------
# Column helpers
# ----------------------------------------------------------------------------------------------------------------


def as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def constant(value: object, length: int, data_type: pa.DataType) -> pa.Array:
    """A column holding one value (or null) ``length`` times, built without a Python list."""
    empty = pa.nulls(length, data_type)
    return empty if value is None else pc.fill_null(empty, pa.scalar(value, data_type))


def trim(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.ascii_trim_whitespace(column)


def blank_to_null(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.if_else(pc.equal(column, ""), _NULL_TEXT, column)


@dataclass(frozen=True)
class Check:
    """One row check: ``fails`` is true where a row fails (null counts as passing).

    ``reason`` is a fixed text, or a function of the failing rows' indices that builds one text per row; it runs
    only when some row fails, so the clean path costs one boolean column per check.
    """

    fails: pa.Array | pa.ChunkedArray
    reason: str | Callable[[pa.Array], pa.Array]


def said(prefix: str, column: pa.Array | pa.ChunkedArray, suffix: str) -> Callable[[pa.Array], pa.Array]:
    """A reason builder quoting the offending value: ``prefix'value'suffix``."""
    return lambda rows: quoted(prefix, as_array(column).take(rows), suffix)


def quoted(prefix: str, column: pa.Array | pa.ChunkedArray, suffix: str) -> pa.Array | pa.ChunkedArray:
    """``prefix'value'suffix`` per row, vectorised (``<missing>`` for a null value)."""
    shown = pc.fill_null(column, "<missing>")
    return pc.binary_join_element_wise(prefix + "'", shown, "'" + suffix, "")


def evaluate(checks: Sequence[Check], length: int) -> pa.Array | None:
    """The first failing check's reason per row (null for a passing row), or None when every row passes."""
    masks = [as_array(pc.fill_null(c.fails, False)) for c in checks]
    if not masks:
        return None
    failing = masks[0]
    for mask in masks[1:]:
        failing = pc.or_(failing, mask)
    if not pc.any(failing).as_py():
        return None
    rows = pc.indices_nonzero(failing)
    texts = []
    for check, mask in zip(checks, masks, strict=True):
        hit = mask.take(rows)
        if not pc.any(hit).as_py():
            continue
        text = pa.scalar(check.reason) if isinstance(check.reason, str) else check.reason(rows)
        texts.append(pc.if_else(hit, text, _NULL_TEXT))
    reasons = texts[0] if len(texts) == 1 else pc.coalesce(*texts)
    return pc.replace_with_mask(pa.nulls(length, pa.string()), failing, as_array(reasons))


def combine_reasons(first: pa.Array | None, then: pa.Array | None) -> pa.Array | None:
    if first is None or then is None:
        return then if first is None else first
    return pc.coalesce(first, then)


def parse_numbers(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Cast trimmed text to double. Returns ``(values, bad)``: ``bad`` marks text that is no finite number.

    The whole column is cast at once; only when that fails are the offending rows found with a pattern.
    """
    try:
        values = pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        is_number = pc.fill_null(pc.match_substring_regex(text, NUMBER_PATTERN), False)
        values = pc.cast(pc.if_else(is_number, text, _NULL_TEXT), pa.float64())
        not_number = pc.and_(pc.is_valid(text), pc.invert(is_number))
        return values, pc.or_(not_number, pc.fill_null(pc.invert(pc.is_finite(values)), False))
    return values, pc.fill_null(pc.invert(pc.is_finite(values)), False)


def parse_years(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Cast trimmed text to an int32 year. Returns ``(years, bad)`` (``bad``: not four digits)."""
    pattern_ok = None
    try:
        years = pc.cast(text, pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pattern_ok = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]{4}$"), False)
        years = pc.cast(pc.if_else(pattern_ok, text, _NULL_TEXT), pa.int32())
    in_range = pc.and_(pc.greater_equal(years, 1000), pc.less_equal(years, 9999))
    four_digits = pc.equal(pc.binary_length(text), 4)
    good = pc.fill_null(pc.and_(in_range, four_digits), False)
    bad = pc.and_(pc.is_valid(text), pc.invert(good))
    return pc.if_else(good, years, pa.scalar(None, pa.int32())), bad


def positions(length: int, start: int = 0) -> pa.Array:
    return pa.array(np.arange(start, start + length, dtype=np.int64))


def label(value: str, length: int) -> pa.DictionaryArray:
    """A text column holding one value ``length`` times, dictionary-encoded: 4 bytes a row instead of the text.

    Lineage and file names repeat on every row of a landing; materialised, they were the largest columns of a bulk
    file in memory, and the Parquet writer hashed every copy to encode them. Staging files are written without
    pyarrow's own schema (``parquet_spool.PARQUET_OPTIONS``), so readers get plain text back.
    """
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(length, dtype=np.int32)), pa.array([value], pa.string()))


def is_text_dictionary(data_type: pa.DataType) -> bool:
    return pa.types.is_dictionary(data_type) and pa.types.is_string(data_type.value_type)


def same_logical_type(data_type: pa.DataType, wanted: pa.DataType) -> bool:
    """Equal types, or dictionary-encoded text where text is wanted (the same column once written)."""
    return data_type == wanted or (pa.types.is_string(wanted) and is_text_dictionary(data_type))


def dense(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded text decoded (to concatenate or sort it with plain text)."""
    if not any(is_text_dictionary(f.type) for f in table.schema):
        return table
    arrays = [pc.cast(c, pa.string()) if is_text_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(arrays, names=table.column_names)


def lineage_columns(lineage: Lineage, length: int) -> dict[str, pa.Array]:
    return {
        "_source": label(lineage.source, length),
        "_ingested_at": constant(lineage.ingested_at, length, INGESTED_AT),
        "_run_id": label(lineage.run_id, length),
    }


def build_table(spec: TableSpec, columns: dict[str, pa.Array | pa.ChunkedArray], lineage: Lineage) -> pa.Table:
    """A table of ``spec``'s columns (same names, same logical types) from named data columns plus the lineage
    columns; text repeated on every row may stay dictionary-encoded (``label``)."""
    length = len(next(iter(columns.values()))) if columns else 0
    data = {**columns, **lineage_columns(lineage, length)}
    arrays = []
    for field in spec.schema:
        column = data.get(field.name)
        if column is None:
            column = pa.nulls(length, field.type)
        elif not same_logical_type(column.type, field.type):
            column = pc.cast(column, field.type)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, names=spec.schema.names)


def split_rows(
    typed: pa.Table, raw: pa.Table, reason: pa.Array | None, source: str, first_record: int = 0
) -> tuple[pa.Table, pa.Table]:
    """Valid rows of ``typed``, and rejected rows of ``raw`` with ``_reason``, ``_source`` and ``_record``.

    ``reason`` is null for a passing row (None: every row passes). ``_record`` is the row's 0-based position
    among the data records of its landing object.
    """
    if reason is None:
        return typed, rejected_schema_of(raw.schema).empty_table()
    failed = pc.is_valid(reason)
    rejected = raw.append_column(REASON, reason).append_column(SOURCE, constant(source, raw.num_rows, pa.string()))
    rejected = rejected.append_column(RECORD, positions(raw.num_rows, first_record)).filter(failed)
    return typed.filter(pc.invert(failed)), rejected


def rejected_schema_of(raw_schema: pa.Schema) -> pa.Schema:
    return pa.schema([*raw_schema, pa.field(REASON, pa.string()), pa.field(SOURCE, pa.string()), (RECORD, pa.int64())])


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: columns reordered, cast, missing ones null, unknown ones dropped. Dictionary-encoded
    text stays encoded where the schema wants text (``dense`` decodes it)."""
    if table.schema.equals(schema) or (
        table.column_names == schema.names
        and all(same_logical_type(f.type, w.type) for f, w in zip(table.schema, schema, strict=True))
    ):
        return table
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            arrays.append(column if same_logical_type(column.type, field.type) else pc.cast(column, field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, names=schema.names)


# ----------------------------------------------------------------------------------------------------------------
# Keys: duplicates within one input, and the merge into staging
# ----------------------------------------------------------------------------------------------------------------


def _same_as_next(table: pa.Table, key: Sequence[str]) -> pa.Array:
    """For a table sorted on ``key``: row i has the same key as row i+1 (length n-1)."""
    n = table.num_rows
    same = None
    for name in key:
        column = table.column(name).combine_chunks()
        equal = pc.fill_null(pc.equal(column.slice(0, n - 1), column.slice(1)), False)
        same = equal if same is None else pc.and_(same, equal)
    return same


def _differs(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """Row i differs from row i+1 in any of ``columns`` (nulls compare equal to nulls; length n-1)."""
    n = table.num_rows
    differs = constant(False, n - 1, pa.bool_())
    for name in columns:
        column = table.column(name).combine_chunks()
        left, right = column.slice(0, n - 1), column.slice(1)
        equal = pc.or_(pc.fill_null(pc.equal(left, right), False), pc.and_(pc.is_null(left), pc.is_null(right)))
        differs = pc.or_(differs, pc.invert(equal))
    return differs


# The last table found strictly sorted, by identity, with its key. Parsing checks a landing's rows for duplicates
# and the merge checks the same table object again, on a longer key, before writing it. A table is immutable, so
# the answer cannot go stale, and the weak reference lets an id be reused only once the table is gone.
_LAST_SORTED: list[tuple[weakref.ref[pa.Table], tuple[str, ...]]] = []


def strictly_sorted(table: pa.Table, key: Sequence[str]) -> bool:
    """Every row's key is greater than the previous row's (so: sorted, and no key twice)."""
    n = table.num_rows
    if n < 2:
        return True
    if any(ref() is table and tuple(key[: len(names)]) == names for ref, names in _LAST_SORTED):
        return True  # strictly sorted on a prefix of the key: on the whole key too
    ahead = None
    for name in reversed(key):
        column = as_array(table.column(name))
        left, right = column.slice(0, n - 1), column.slice(1)
        less = pc.less(left, right)
        ahead = less if ahead is None else pc.or_(less, pc.and_(pc.equal(left, right), ahead))
    result = bool(pc.all(pc.fill_null(ahead, False)).as_py())
    if result:
        _LAST_SORTED[:] = [(weakref.ref(table), tuple(key))]
    return result


def remember_sorted(table: pa.Table, key: Sequence[str]) -> None:
    """Record that ``table`` is strictly sorted on ``key`` (its producer proved it another way), so
    ``strictly_sorted`` does not compare its rows again."""
    _LAST_SORTED[:] = [(weakref.ref(table), tuple(key))]


def duplicate_reasons(table: pa.Table, key: Sequence[str]) -> pa.Array | None:
    """A reason for every row whose natural key already appeared in an earlier row (None: no duplicates)."""
    n = table.num_rows
    if strictly_sorted(table, key):
        return None
    position = positions(n)
    keyed = table.select(list(key)).append_column("__position", position)
    order = pc.sort_indices(keyed, sort_keys=[*((k, "ascending") for k in key), ("__position", "ascending")])
    ordered = keyed.take(order)
    later = pa.concat_arrays([pa.array([False]), _same_as_next(ordered, key)])
    if not pc.any(later).as_py():
        return None
    # back to input order: the positions of the later duplicates
    duplicate_positions = as_array(ordered.column("__position")).filter(later)
    is_duplicate = pc.is_in(position, value_set=duplicate_positions)
    text = pa.scalar(f"duplicate of an earlier row with the same {', '.join(key)}")
    return pc.if_else(is_duplicate, text, _NULL_TEXT)


def add_duplicate_reasons(reason: pa.Array | None, typed: pa.Table, key: Sequence[str]) -> pa.Array | None:
    """``reason`` plus a duplicate reason for passing rows whose key an earlier passing row already had."""
    passing = typed if reason is None else typed.filter(pc.is_null(reason))
    duplicates = duplicate_reasons(passing, key)
    if duplicates is None:
        return reason
    if reason is None:
        return duplicates
    # the duplicate reasons belong to the passing rows, in order: put them back in place
    spread = pc.replace_with_mask(pa.nulls(typed.num_rows, pa.string()), pc.is_null(reason), duplicates)
    return pc.coalesce(reason, spread)


@dataclass
class RowCounts:
    """What staging did to the rows of one table: the counts a run reports, summed over landings or pieces."""

    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    rows_new: int = 0
    rows_revised: int = 0
    rows_retired: int = 0

    def add(self, other: RowCounts) -> None:
        for name in ROW_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


ROW_COUNTS = ("rows_in", "rows_written", "rows_quarantined", "rows_new", "rows_revised", "rows_retired")


@dataclass(frozen=True)
class MergeResult:
    table: pa.Table
    rows_written: int  # incoming rows that won on their key
    rows_new: int  # of which, keys staging did not hold before
    rows_revised: int  # of which, keys whose value columns changed


def merge_latest(
    existing: pa.Table | None, incoming: pa.Table, spec: TableSpec, keep_origin: bool = False
) -> MergeResult:
    """Upsert ``incoming`` into ``existing`` on the natural key; the newest ``_ingested_at`` wins.

    Ties (the same landing processed again) go to the greater ``_source`` and then to the incoming row, so the
    outcome does not depend on the order in which landings are processed. The result is sorted on the natural
    key, which makes the written bytes a function of the rows only. ``keep_origin``: the result keeps a column
    ``_origin`` (1: the row came from ``incoming``, 0: from ``existing``).
    """
    schema = spec.schema
    incoming = align(incoming, schema)
    if (existing is None or not existing.num_rows) and strictly_sorted(incoming, spec.natural_key) and not keep_origin:
        return MergeResult(incoming, incoming.num_rows, incoming.num_rows, 0)
    incoming = dense(incoming)
    parts = [incoming]
    origins = [constant(1, incoming.num_rows, pa.int8())]
    if existing is not None and existing.num_rows:
        parts.append(dense(align(existing, schema)))
        origins.append(constant(0, existing.num_rows, pa.int8()))
    combined = pa.concat_tables(parts).append_column(_ORIGIN, pa.chunked_array(origins, pa.int8()))
    n = combined.num_rows
    if n == 0:
        return MergeResult(schema.empty_table(), 0, 0, 0)
    order = pc.sort_indices(
        combined,
        sort_keys=[
            *((k, "ascending") for k in spec.natural_key),
            ("_ingested_at", "descending"),
            ("_source", "descending"),
            (_ORIGIN, "descending"),
        ],
    )
    ordered = combined.take(order)
    if n == 1:
        same_next = pa.array([], pa.bool_())
        changed = pa.array([], pa.bool_())
    else:
        same_next = _same_as_next(ordered, spec.natural_key)
        changed = _differs(ordered, spec.value_columns)
    first = pa.concat_arrays([pa.array([True]), pc.invert(same_next)])
    has_older = pa.concat_arrays([same_next, pa.array([False])])
    changed_vs_older = pa.concat_arrays([changed, pa.array([False])])
    won = pc.and_(first, pc.equal(ordered.column(_ORIGIN).combine_chunks(), 1))
    replaced = pc.and_(won, has_older)
    rows_written = pc.sum(won).as_py() or 0
    rows_new = rows_written - (pc.sum(replaced).as_py() or 0)
    rows_revised = pc.sum(pc.and_(replaced, changed_vs_older)).as_py() or 0
    merged = ordered.filter(first)
    if not keep_origin:
        merged = merged.drop_columns([_ORIGIN])
    return MergeResult(merged.combine_chunks(), rows_written, rows_new, rows_revised)


def _key_text(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """The natural key of each row as one string (trimmed text of each part), to compare keys across tables."""
    parts = [pc.utf8_trim_whitespace(pc.cast(as_array(table.column(c)), pa.string())) for c in columns]
    if len(parts) == 1:
        return pc.fill_null(parts[0], "")
    return pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace", null_replacement="")


def retire_missing(merged: pa.Table, snapshot: Parsed, spec: TableSpec) -> tuple[pa.Table, pa.Table]:
    """Split a group merged with a full snapshot into (current rows, retired rows).

    A key stays current when the snapshot holds it: as a valid row, or as a rejected one (its row is quarantined
    and the previous value stays until a valid one arrives). Every other key has left upstream: it is retired.
    """
    key_columns = [c for c in spec.natural_key if c in snapshot.rejected.column_names or not snapshot.rejected.num_rows]
    held = [_key_text(align(snapshot.valid, spec.schema), key_columns)]
    if snapshot.rejected.num_rows and all(c in snapshot.rejected.column_names for c in key_columns):
        held.append(_key_text(snapshot.rejected, key_columns))
    value_set = pa.concat_arrays(held) if held else pa.array([], pa.string())
    keep = pc.is_in(_key_text(merged, key_columns), value_set=value_set)
    return merged.filter(keep), merged.filter(pc.invert(keep))


def replace_with_snapshot(existing: pa.Table | None, snapshot: Parsed, spec: TableSpec) -> tuple[MergeResult, pa.Table]:
    """``merge_latest`` then ``retire_missing``, for a full snapshot at least as new as every existing row (the
    caller checked that the group holds nothing newer): returns the merge (its table: the current rows) and the
    retired rows.

    The snapshot's valid rows win every key they hold, so the existing rows left in the merge are exactly the keys
    the valid rows no longer hold; only those are compared (as text) with the rejected rows' keys, which keep their
    previous value. A whole file's keys are never joined as text, as ``retire_missing`` does for a small group.
    """
    if existing is None or not existing.num_rows:
        return merge_latest(None, snapshot.valid, spec), spec.schema.empty_table()
    merged = merge_latest(existing, snapshot.valid, spec, keep_origin=True)
    table = merged.table
    older = pc.equal(table.column(_ORIGIN), 0)
    candidates = table.filter(older).drop_columns([_ORIGIN])
    stays = pc.invert(older)
    key_columns = [c for c in spec.natural_key if c in snapshot.rejected.column_names]
    if candidates.num_rows and snapshot.rejected.num_rows and key_columns:
        held = pc.is_in(_key_text(candidates, key_columns), value_set=_key_text(snapshot.rejected, key_columns))
        stays = pc.or_(stays, pc.replace_with_mask(constant(False, table.num_rows, pa.bool_()), older, held))
    current = table.filter(stays).drop_columns([_ORIGIN])
    retired = table.filter(pc.invert(stays)).drop_columns([_ORIGIN])
    result = MergeResult(current, merged.rows_written, merged.rows_new, merged.rows_revised)
    return result, retired


# ----------------------------------------------------------------------------------------------------------------
# Territory join keys (Catalunya)
# ----------------------------------------------------------------------------------------------------------------

_PUNCTUATION = re.compile(r"[^a-z0-9]+")
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.+?),\s*(?P<article>el|la|els|les|l'|l’|los|las|lo)$", re.IGNORECASE)


def territory_key(name: str) -> str:
    """A territory name as a join key: articles put back in front, lower case, accents and punctuation dropped.

    ``"Hospitalet de Llobregat, L'"`` and ``"L'Hospitalet de Llobregat"`` both give ``"l hospitalet de llobregat"``;
    ``"Vallès Occidental"`` gives ``"valles occidental"``; ``"Sant Cugat del Vallès"`` gives
    ``"sant cugat del valles"``.
    """
    text = " ".join(name.split())
    inverted = _TRAILING_ARTICLE.match(text)
    if inverted:
        text = f"{inverted['article']} {inverted['name']}"
    decomposed = unicodedata.normalize("NFKD", text.replace("·", "").replace("l.l", "ll"))
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(_PUNCTUATION.sub(" ", ascii_text).split())


def territory_keys(names: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``territory_key`` of every row, computed once per distinct name (vectorised over the rows)."""
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    encoded = pc.dictionary_encode(names)
    keys = pa.array([None if v is None else territory_key(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return keys.take(encoded.indices)
