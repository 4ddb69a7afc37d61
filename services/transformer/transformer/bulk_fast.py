"""The fast path of a bulk data file's piece: parsed straight into dictionaries and numbers, checked on dictionaries.

A BLS data file repeats a few thousand series ids, a hundred years, a handful of periods and footnote codes over
millions of lines. Here pyarrow's CSV reader encodes those columns as dictionaries and parses ``value`` as a
number while it reads; every check of ``bls._observations`` then runs once per distinct value instead of once per
row, and the Parquet writer takes the dictionaries as they are instead of hashing every row again.

The fast path only ever accepts a piece that the exact path (``bls._observations``) would accept whole, with the
same values: the first doubt (a conversion error, a malformed line, an id, year, period or footnote that fails its
check, a value that is not finite, a key out of order or twice) returns None, and the piece is parsed again the
exact way, which finds and words each row's reason.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from transformer.domain import Lineage, Parsed, build_table, label, parse_years, remember_sorted, trim
from transformer.schemas import BLS_OBSERVATION

TEXT_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
READ_BLOCK_BYTES = 1 << 20


def read_piece(piece: bytes, header: tuple[str, ...]) -> pa.Table | None:
    """The piece as dictionary columns and a double ``value`` (``-`` as null), or None on any doubt."""
    malformed: list[bool] = []

    def note(row: object) -> str:
        malformed.append(True)
        return "skip"

    types = dict.fromkeys(header, TEXT_DICTIONARY)
    types["value"] = pa.float64()
    try:
        table = pcsv.read_csv(
            pa.BufferReader(piece),
            read_options=pcsv.ReadOptions(column_names=list(header), use_threads=False, block_size=READ_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, invalid_row_handler=note
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=["-"],  # BLS prints "-" for a value not available; an empty value fails conversion
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if malformed or not table.num_rows:
        return None
    return table.unify_dictionaries().combine_chunks()


def _one(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _strictly_increasing(values: pa.Array) -> bool:
    n = len(values)
    return n < 2 or bool(pc.all(pc.fill_null(pc.less(values.slice(0, n - 1), values.slice(1)), False)).as_py())


def _unique(values: pa.Array) -> bool:
    return len(pc.unique(values)) == len(values)


def fast_observations(
    piece: bytes, header: tuple[str, ...], survey: str, name: str, lineage: Lineage
) -> tuple[Parsed, str, str] | None:
    """The piece's rows as ``bls_observation`` rows (none rejected), with its first and last series; None when the
    exact path must decide (see the module docstring)."""
    table = read_piece(piece, header)
    if table is None:
        return None
    columns = (
        _series(_one(table, "series_id"), survey),
        _years(_one(table, "year")),
        _periods(_one(table, "period")),
        _values(_one(table, "value")),
        _footnotes(_one(table, "footnote_codes")),
    )
    if any(column is None for column in columns):
        return None
    series, years, (periods, period_rank), value, notes = columns
    if not _keys_increase(series.indices, years, period_rank):
        return None  # a key twice, or out of order within a series: the exact path words it
    n = table.num_rows
    typed = build_table(
        BLS_OBSERVATION,
        {
            "series_id": series,
            "year": years,
            "period": periods,
            "value": value,
            "footnote_codes": notes,
            "source_file": label(name, n),
        },
        lineage,
    )
    remember_sorted(typed, ("series_id", "year", "period"))
    first, last = series[0].as_py(), series[n - 1].as_py()
    return Parsed(valid=typed, rejected=_no_rejects(header), rows_in=n), first, last


def _series(series: pa.DictionaryArray, survey: str) -> pa.DictionaryArray | None:
    """Trimmed ids that all pass ``bls.series_id_checks``, in order: the dictionary (first appearance) strictly
    increasing and the rows never going back, so the piece is grouped and sorted by series."""
    from transformer.bls import series_id_checks

    ids = trim(series.dictionary)
    if any(pc.any(pc.fill_null(check.fails, True)).as_py() for check in series_id_checks(ids, survey)):
        return None
    if not _strictly_increasing(ids) or not _non_decreasing(series.indices):
        return None
    return pa.DictionaryArray.from_arrays(series.indices, ids)


def _years(year: pa.DictionaryArray) -> pa.Array | None:
    values, bad = parse_years(trim(year.dictionary))
    if pc.any(bad).as_py() or values.null_count:
        return None
    return values.take(year.indices)


def _periods(period: pa.DictionaryArray) -> tuple[pa.DictionaryArray, pa.Array] | None:
    """The trimmed periods, and each row's rank among them (to compare keys)."""
    from transformer.bls import PERIODS

    periods = trim(period.dictionary)
    if not pc.all(pc.is_in(periods, value_set=PERIODS)).as_py() or not _unique(periods):
        return None
    rank = pc.rank(periods, sort_keys="ascending", tiebreaker="dense").take(period.indices)
    return pa.DictionaryArray.from_arrays(period.indices, periods), rank


def _values(value: pa.Array) -> pa.Array | None:
    return value if pc.all(pc.fill_null(pc.is_finite(value), True)).as_py() else None


def _footnotes(footnote: pa.DictionaryArray) -> pa.DictionaryArray | None:
    """Trimmed codes, a blank one as null; every other one a list of codes."""
    from transformer.bls import FOOTNOTES_PATTERN

    notes = trim(footnote.dictionary)
    blank = pc.equal(notes, "")
    if not pc.all(pc.or_(blank, pc.match_substring_regex(notes, FOOTNOTES_PATTERN))).as_py():
        return None
    if not _unique(notes.filter(pc.invert(blank))):
        return None
    indices = pc.if_else(blank.take(footnote.indices), pa.scalar(None, pa.int32()), footnote.indices)
    return pa.DictionaryArray.from_arrays(indices, notes)


def _non_decreasing(values: pa.Array) -> bool:
    n = len(values)
    return n < 2 or bool(pc.all(pc.less_equal(values.slice(0, n - 1), values.slice(1))).as_py())


def _keys_increase(series: pa.Array, years: pa.Array, periods: pa.Array) -> bool:
    """(series, year, period) strictly increases from each row to the next: sorted, and no key twice."""
    n = len(series)
    if n < 2:
        return True
    ahead = None
    for column in (periods, years, series):
        left, right = column.slice(0, n - 1), column.slice(1)
        less = pc.less(left, right)
        ahead = less if ahead is None else pc.or_(less, pc.and_(pc.equal(left, right), ahead))
    return bool(pc.all(pc.fill_null(ahead, False)).as_py())


def _no_rejects(header: tuple[str, ...]) -> pa.Table:
    from transformer.bls import MALFORMED_LINE
    from transformer.domain import rejected_schema_of

    return rejected_schema_of(
        pa.schema([*((c, pa.string()) for c in header), (MALFORMED_LINE, pa.string())])
    ).empty_table()
