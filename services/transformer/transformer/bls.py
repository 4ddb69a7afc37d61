"""BLS parsing: bulk time-series files (tab-separated, CRLF, padded) and API v2 responses, to staging tables.

Pure: bytes or byte streams in, Arrow tables out. Every check is a vectorised expression over a whole column;
a row that fails one goes to quarantine with the first failing check as its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from transformer.domain import (
    Check,
    Lineage,
    Parsed,
    PayloadRejected,
    add_duplicate_reasons,
    blank_to_null,
    build_table,
    constant,
    evaluate,
    label,
    parse_numbers,
    parse_years,
    rejected_schema_of,
    said,
    split_rows,
    trim,
)
from transformer.readers import PIECE_BYTES, ByteStream, iter_line_pieces, load_json_document, reject_html
from transformer.schemas import BLS_OBSERVATION, BLS_SERIES

OBSERVATION_HEADER = ("series_id", "year", "period", "value", "footnote_codes")
PR_SERIES_HEADER = (
    "series_id",
    "sector_code",
    "class_code",
    "measure_code",
    "duration_code",
    "seasonal",
    "base_year",
    "footnote_codes",
    "begin_year",
    "begin_period",
    "end_year",
    "end_period",
)
SERIES_REQUIRED = ("series_id", "seasonal", "begin_year", "begin_period", "end_year", "end_period")
DECODED_CODES = ("sector", "class", "measure", "duration")  # {x}_code columns decoded by the {survey}.{x} file
MAPPING_FILES = (*DECODED_CODES, "seasonal")

PERIODS_TEXT = "M01-M13, Q01-Q05, A01, S01-S03"
FOOTNOTES_PATTERN = r"^[A-Za-z0-9]+(?:,[A-Za-z0-9]+)*$"
MALFORMED_LINE = "_raw_line"
API_SOURCE_FILE = "api"
_SEASONALITY_CODES = {"seasonally adjusted": "S", "not seasonally adjusted": "U"}


def survey_of(series_id: str) -> str:
    """The survey a series belongs to: the first two letters of its id, lower case (LNS14000000 -> ln)."""
    return series_id[:2].lower()


def is_data_file(name: str, survey: str) -> bool:
    return name.startswith(f"{survey}.data.")


# ----------------------------------------------------------------------------------------------------------------
# Tab-separated bulk files
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TsvFile:
    """A bulk file read as text: header names stripped and lower-cased, every cell an untouched string."""

    name: str
    header: tuple[str, ...]
    table: pa.Table  # one string column per header name, cells as in the file (padding kept)
    malformed: pa.Table  # lines whose field count differs from the header's: raw line, reason, record


def _header(first_line: bytes, name: str, part_key: str) -> tuple[str, ...]:
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRejected(f"{name} header is not UTF-8 text", check="payload.encoding", part_key=part_key) from exc
    return tuple(cell.strip().lower() for cell in text.rstrip("\r\n").split("\t"))


def check_header(
    header: Sequence[str], name: str, part_key: str, expected: Sequence[str] = (), required: Sequence[str] = ()
) -> None:
    """A changed schema (a missing, extra or renamed column) rejects the file as a whole.

    Raises
    ------
    PayloadRejected
        Naming the missing and unexpected columns.
    """
    if len(set(header)) != len(header):
        raise PayloadRejected(
            f"{name} header repeats a column: {list(header)}", check="schema.columns", part_key=part_key
        )
    wanted = list(expected or required)
    missing = [c for c in wanted if c not in header]
    extra = [c for c in header if c not in wanted] if expected else []
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected column(s) {', '.join(extra)}")
        raise PayloadRejected(
            f"changed schema in {name}: {'; '.join(problems)} (expected {', '.join(wanted)})",
            check="schema.columns",
            part_key=part_key,
        )


def _open_tsv(
    stream: ByteStream, name: str, part_key: str, expected: Sequence[str], required: Sequence[str], piece_bytes: int
) -> tuple[tuple[str, ...], Iterable[bytes]]:
    """The header (checked) and the file's pieces after it, each ending at a line end.

    Raises
    ------
    PayloadRejected
        An empty file, an HTML page or a header that does not match.
    """
    pieces = iter_line_pieces(stream, piece_bytes)
    first = next(pieces, b"")
    if not first or first.isspace():
        raise PayloadRejected(f"{name} is empty", check="payload.empty", part_key=part_key)
    reject_html(first[:512], name, part_key)
    line_end = first.find(b"\n")
    header_line = first if line_end < 0 else first[: line_end + 1]
    header = _header(header_line, name, part_key)
    check_header(header, name, part_key, expected, required)
    return header, _chain([first[len(header_line) :]], pieces)


# Blocks of one piece are parsed on pyarrow's threads; rows keep their order in the table either way.
PARSE_BLOCK_BYTES = 1 << 20


def _parse_piece(
    piece: bytes,
    header: Sequence[str],
    malformed: list[dict[str, Any]],
    name: str,
    part_key: str,
    block_bytes: int = PARSE_BLOCK_BYTES,
):
    try:
        return _read_piece(piece, header, malformed, block_bytes)
    except pa.ArrowInvalid as exc:
        raise PayloadRejected(
            f"{name} is not valid tab-separated text: {exc}", check="payload.tsv", part_key=part_key
        ) from exc


def _malformed_table(malformed: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(malformed, schema=pa.schema([(MALFORMED_LINE, pa.string()), ("_reason", pa.string())]))


def read_tsv(
    stream: ByteStream,
    name: str,
    part_key: str,
    expected: Sequence[str] = (),
    required: Sequence[str] = (),
    piece_bytes: int = PIECE_BYTES,
    block_bytes: int = PARSE_BLOCK_BYTES,
) -> TsvFile:
    """Read a BLS tab-separated file piece by piece (about ``piece_bytes`` each, parsed in blocks of ``block_bytes``
    on pyarrow's threads) into string columns; the sizes change how the file is read, never the rows.

    Raises
    ------
    PayloadRejected
        An empty file, an HTML page, a header that does not match, or text pyarrow cannot parse.
    """
    header, pieces = _open_tsv(stream, name, part_key, expected, required, piece_bytes)
    malformed: list[dict[str, Any]] = []
    tables = [
        _parse_piece(piece, header, malformed, name, part_key, block_bytes)
        for piece in pieces
        if piece and not piece.isspace()
    ]
    schema = pa.schema([(c, pa.string()) for c in header])
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return TsvFile(name=name, header=header, table=table, malformed=_malformed_table(malformed))


def _read_piece(
    piece: bytes, header: Sequence[str], malformed: list[dict[str, Any]], block_bytes: int = PARSE_BLOCK_BYTES
) -> pa.Table:
    """One piece of a TSV file as string columns; its malformed lines are appended to ``malformed`` in file order.

    The piece is parsed on pyarrow's threads. A thread reports a malformed line whenever it meets one, so the
    order of those reports is not the file's: a piece that has any is parsed again on one thread, which reports
    them in order. Clean pieces, nearly all of them, are parsed once.
    """

    def read(use_threads: bool, on_invalid_row: Any) -> pa.Table:
        return pcsv.read_csv(
            pa.BufferReader(piece),
            read_options=pcsv.ReadOptions(column_names=list(header), use_threads=use_threads, block_size=block_bytes),
            parse_options=pcsv.ParseOptions(
                delimiter="\t", quote_char=False, escape_char=False, invalid_row_handler=on_invalid_row
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    seen: list[bool] = []

    def note(row: Any) -> str:
        seen.append(True)
        return "skip"

    table = read(True, note)
    if not seen:
        return table

    def in_order(row: Any) -> str:
        malformed.append(
            {
                MALFORMED_LINE: row.text,
                "_reason": f"line has {row.actual_columns} tab-separated fields, expected {row.expected_columns}",
            }
        )
        return "skip"

    return read(False, in_order)


def _chain(first: Iterable[bytes], rest: Iterable[bytes]) -> Iterable[bytes]:
    yield from first
    yield from rest


def _malformed_rejects(tsv: TsvFile, source: str) -> pa.Table:
    """Malformed lines as rejected rows: raw cells null, the raw line kept."""
    raw_schema = pa.schema([*(pa.field(c, pa.string()) for c in tsv.header), pa.field(MALFORMED_LINE, pa.string())])
    n = tsv.malformed.num_rows
    columns = {c: pa.nulls(n, pa.string()) for c in tsv.header}
    columns[MALFORMED_LINE] = tsv.malformed.column(MALFORMED_LINE)
    columns["_reason"] = tsv.malformed.column("_reason")
    columns["_source"] = constant(source, n, pa.string())
    columns["_record"] = pa.nulls(n, pa.int64())
    return pa.table(columns, schema=rejected_schema_of(raw_schema))


def _raw_with_line(table: pa.Table) -> pa.Table:
    return table.append_column(MALFORMED_LINE, pa.nulls(table.num_rows, pa.string()))


# ----------------------------------------------------------------------------------------------------------------
# Observations
# ----------------------------------------------------------------------------------------------------------------


PERIODS = pa.array(
    [f"M{m:02d}" for m in range(1, 14)] + [f"Q{q:02d}" for q in range(1, 6)] + ["A01", "S01", "S02", "S03"]
)


def series_id_checks(series_id: Any, survey: str | None) -> list[Check]:
    """A BLS series id: 3 to 30 upper-case letters and digits (and the survey's prefix, for a bulk file)."""
    length = pc.binary_length(series_id)
    well_formed = pc.and_(
        pc.and_(pc.ascii_is_alnum(series_id), pc.ascii_is_upper(series_id)),
        pc.and_(pc.greater_equal(length, 3), pc.less_equal(length, 30)),
    )
    checks = [
        Check(pc.is_null(series_id), "series_id is missing"),
        Check(pc.invert(well_formed), said("series_id ", series_id, " is not a BLS series id")),
    ]
    if survey is not None:
        checks.append(
            Check(
                pc.invert(pc.starts_with(series_id, survey.upper())),
                said("series_id ", series_id, f" is not a {survey} series"),
            )
        )
    return checks


def _observations(
    raw: pa.Table,
    columns: dict[str, Any],
    survey: str | None,
    source_file: str,
    lineage: Lineage,
    extra_checks: Sequence[Check] = (),
    first_record: int = 0,
) -> tuple[pa.Table, pa.Table]:
    """Validate and type observation columns (trimmed text, blanks as null) against the staging schema.

    ``first_record``: the position of the first row among the data records of its file (for rejected rows)."""
    series_id, year_text, period = columns["series_id"], columns["year"], columns["period"]
    value_text, footnotes = columns["value"], columns["footnote_codes"]
    # BLS prints "-" where a value is not available: a null value, not an error
    values, not_numeric = parse_numbers(pc.if_else(pc.equal(value_text, "-"), pa.scalar(None, pa.string()), value_text))
    years, bad_year = parse_years(year_text)
    checks = [
        *extra_checks,
        *series_id_checks(series_id, survey),
        Check(pc.is_null(year_text), "year is missing"),
        Check(bad_year, said("year ", year_text, " is not a 4-digit year")),
        Check(pc.is_null(period), "period is missing"),
        Check(
            pc.invert(pc.is_in(period, value_set=PERIODS)),
            said("period ", period, f" is not a BLS period ({PERIODS_TEXT})"),
        ),
        Check(pc.is_null(value_text), "value is missing"),
        Check(not_numeric, said("value ", value_text, " is not numeric")),
        Check(
            pc.invert(pc.match_substring_regex(footnotes, FOOTNOTES_PATTERN)),
            said("footnote_codes ", footnotes, " is not a list of footnote codes"),
        ),
    ]
    n = raw.num_rows
    reason = evaluate(checks, n)
    typed = build_table(
        BLS_OBSERVATION,
        {
            "series_id": series_id,
            "year": years,
            "period": period,
            "value": values,
            "footnote_codes": footnotes,
            "source_file": label(source_file, n),
        },
        lineage,
    )
    reason = add_duplicate_reasons(reason, typed, ("series_id", "year", "period"))
    return split_rows(typed, raw, reason, lineage.source, first_record)


def parse_bulk_observations(
    stream: ByteStream,
    name: str,
    survey: str,
    lineage: Lineage,
    part_key: str,
    piece_bytes: int = PIECE_BYTES,
    block_bytes: int = PARSE_BLOCK_BYTES,
) -> Parsed:
    """A ``{survey}.data.*`` file to ``bls_observation`` rows (``source_file`` = the file name); ``piece_bytes`` and
    ``block_bytes``: how it is read (``read_tsv``), which never changes the rows.

    Raises
    ------
    PayloadRejected
        When the file fails as a whole (empty, HTML, changed header, unparseable).
    """
    tsv = read_tsv(stream, name, part_key, OBSERVATION_HEADER, (), piece_bytes, block_bytes)
    raw = tsv.table
    columns = {c: blank_to_null(trim(raw.column(c))) for c in OBSERVATION_HEADER}
    valid, rejected = _observations(_raw_with_line(raw), columns, survey, name, lineage)
    if tsv.malformed.num_rows:
        rejected = pa.concat_tables([rejected, _malformed_rejects(tsv, lineage.source)])
    return Parsed(valid=valid, rejected=rejected, rows_in=raw.num_rows + tsv.malformed.num_rows)


class NotGroupedBySeries(Exception):  # noqa: N818 - a signal to stage the file whole, not an error
    """The file's rows are not grouped by series (BLS sorts them): it cannot be staged series range by range."""


# A bulk data file is staged in pieces of about this much text (~400,000 observations of a pr file), each cut at a
# series boundary, so memory holds a few pieces (about 400 MB at the peak, measured), whatever the size of the file.
BULK_PIECE_BYTES = 16 << 20


@dataclass
class ObservationPiece:
    """The rows of a contiguous range of series of a bulk data file, parsed and checked."""

    parsed: Parsed
    first_series: str | None
    last_series: str | None
    records: int  # the data lines it holds (its rows, malformed lines included)


def iter_bulk_observations(
    stream: ByteStream,
    name: str,
    survey: str,
    lineage: Lineage,
    part_key: str,
    piece_bytes: int | None = None,
) -> Iterator[ObservationPiece]:
    """A ``{survey}.data.*`` file to ``bls_observation`` rows, piece by piece, each piece ending at a series boundary
    (the lines of a piece's last series wait for the next piece), so every key of a series, its duplicates
    included, is checked within one piece. A clean piece takes the fast path (``transformer.bulk_fast``); any other
    is parsed the exact way, with a reason for each rejected row and its record position in the file.

    Raises
    ------
    PayloadRejected
        When the file fails as a whole (empty, HTML, changed header, unparseable).
    NotGroupedBySeries
        When a series comes again after another one started: the caller stages the file whole instead.
    """
    from transformer.bulk_fast import fast_observations

    header, pieces = _bulk_pieces(stream, name, part_key, piece_bytes or BULK_PIECE_BYTES)
    previous_last: str | None = None
    record = 0
    for piece in pieces:
        fast = fast_observations(piece, header, survey, name, lineage)
        if fast is not None:
            parsed, first, last = fast
            if previous_last is not None and not first > previous_last:
                raise NotGroupedBySeries(f"{name}: series {first} comes again after {previous_last}")
            found = ObservationPiece(parsed, first, last, parsed.rows_in)
        else:
            malformed: list[dict[str, Any]] = []
            raw = _parse_piece(piece, header, malformed, name, part_key)
            series = trim(raw.column("series_id")).combine_chunks()
            _check_grouped(series, previous_last, name)
            found = _piece(raw, series, survey, name, lineage, record, malformed)
        record += found.records
        previous_last = found.last_series or previous_last
        yield found


def _bulk_pieces(
    stream: ByteStream, name: str, part_key: str, piece_bytes: int
) -> tuple[tuple[str, ...], Iterator[memoryview]]:
    """The header (checked) and the file's data in pieces of about ``piece_bytes``, each ending where a series ends
    (the lines of the last series move on to the next piece). Pieces are views of one buffer per read: the text is
    copied once from the stream, not again for each cut.

    Raises
    ------
    PayloadRejected
        An empty file, an HTML page or a header that does not match.
    """
    first = stream.read(piece_bytes)
    if not first or first.isspace():
        raise PayloadRejected(f"{name} is empty", check="payload.empty", part_key=part_key)
    reject_html(first[:512], name, part_key)
    line_end = first.find(b"\n")
    header_end = len(first) if line_end < 0 else line_end + 1
    header = _header(first[:header_end], name, part_key)
    check_header(header, name, part_key, OBSERVATION_HEADER)

    def pieces() -> Iterator[memoryview]:
        buffer = bytearray(first[header_end:])
        while True:
            chunk = stream.read(piece_bytes)
            if not chunk:
                if not buffer.isspace() and buffer:
                    yield memoryview(buffer)
                return
            buffer += chunk
            whole = buffer.rfind(b"\n") + 1  # the complete lines; a partial last line waits for more
            cut = _last_series_start(buffer, whole) if whole else 0
            if cut:
                view, buffer = memoryview(buffer)[:cut], bytearray(buffer[cut:])
                yield view

    return header, pieces()


def _series_of_line(data: bytes | bytearray, start: int, end: int) -> bytes:
    tab = data.find(b"\t", start, end)
    return bytes(data[start : end if tab < 0 else tab]).strip()


def _last_series_start(data: bytes | bytearray, end: int) -> int:
    """Where the lines of the last series of ``data[:end]`` (whole lines) begin; 0 when all of it is one series."""
    while end and data[end - 1] in b"\r\n":
        end -= 1
    start = data.rfind(b"\n", 0, end) + 1
    last = _series_of_line(data, start, end)
    while start > 0:
        previous = data.rfind(b"\n", 0, start - 1) + 1
        if _series_of_line(data, previous, start - 1) != last:
            return start
        start = previous
    return 0


def _check_grouped(series: pa.Array, previous_last: str | None, name: str) -> None:
    """Series ids never decrease within the piece, and the piece starts after the previous one's last series."""
    n = len(series)
    if n == 0:
        return
    if n > 1 and pc.any(pc.fill_null(pc.less(series.slice(1), series.slice(0, n - 1)), False)).as_py():
        raise NotGroupedBySeries(f"{name}: series ids are not in order")
    if previous_last is not None and not series[0].as_py() > previous_last:
        raise NotGroupedBySeries(f"{name}: series {series[0].as_py()} comes again after {previous_last}")


def _piece(
    raw: pa.Table,
    series: pa.Array,
    survey: str,
    name: str,
    lineage: Lineage,
    record: int,
    malformed: list[dict[str, Any]],
) -> ObservationPiece:
    columns = {c: blank_to_null(series if c == "series_id" else trim(raw.column(c))) for c in OBSERVATION_HEADER}
    valid, rejected = _observations(_raw_with_line(raw), columns, survey, name, lineage, first_record=record)
    bad_lines = _malformed_table(malformed)
    if bad_lines.num_rows:
        tsv = TsvFile(name=name, header=OBSERVATION_HEADER, table=raw, malformed=bad_lines)
        rejected = pa.concat_tables([rejected, _malformed_rejects(tsv, lineage.source)])
    n = len(series)
    return ObservationPiece(
        parsed=Parsed(valid=valid, rejected=rejected, rows_in=raw.num_rows + bad_lines.num_rows),
        first_series=series[0].as_py() if n else None,
        last_series=series[n - 1].as_py() if n else None,
        records=raw.num_rows,
    )


# ----------------------------------------------------------------------------------------------------------------
# Series metadata (bulk .series file decoded with its mapping files)
# ----------------------------------------------------------------------------------------------------------------


def parse_mapping(stream: ByteStream, name: str, part_key: str) -> pa.Table:
    """A mapping file (``pr.sector``, ``pr.seasonal``, ...) as ``code, text`` (both trimmed).

    Raises
    ------
    PayloadRejected
        When the first column is not a ``*_code`` column or the file is not parseable.
    """
    tsv = read_tsv(stream, name, part_key)
    if len(tsv.header) < 2 or not tsv.header[0].endswith("_code"):
        raise PayloadRejected(
            f"changed schema in {name}: expected a *_code column then its text, got {list(tsv.header)}",
            check="schema.columns",
            part_key=part_key,
        )
    code = trim(tsv.table.column(0))
    text = trim(tsv.table.column(1))
    keep = pc.not_equal(code, "")
    return pa.table({"code": code, "text": text}).filter(keep)


def _decode(codes: Any, mapping: pa.Table | None) -> Any:
    if mapping is None:
        return pa.nulls(len(codes), pa.string())
    index = pc.index_in(codes, value_set=mapping.column("code").combine_chunks())
    return mapping.column("text").combine_chunks().take(index)


def parse_bulk_series(
    stream: ByteStream,
    name: str,
    survey: str,
    mappings: dict[str, pa.Table],
    lineage: Lineage,
    part_key: str,
) -> Parsed:
    """A ``{survey}.series`` file to ``bls_series`` rows, codes decoded with the survey's mapping files.

    ``mappings`` maps ``sector``, ``class``, ``measure``, ``duration`` and ``seasonal`` to ``code, text`` tables.
    For ``pr`` the header must match exactly; other surveys need the common columns only.

    Raises
    ------
    PayloadRejected
        When the file fails as a whole.
    """
    expected = PR_SERIES_HEADER if survey == "pr" else ()
    tsv = read_tsv(stream, name, part_key, expected=expected, required=SERIES_REQUIRED)
    raw = tsv.table
    n = raw.num_rows
    col = {c: blank_to_null(trim(raw.column(c))) for c in tsv.header}
    series_id = col["series_id"]
    checks = series_id_checks(series_id, survey)
    for edge in ("begin", "end"):
        year, period = col[f"{edge}_year"], col[f"{edge}_period"]
        checks.append(Check(parse_years(year)[1], said(f"{edge}_year ", year, " is not a 4-digit year")))
        checks.append(
            Check(
                pc.invert(pc.is_in(period, value_set=PERIODS)), said(f"{edge}_period ", period, " is not a BLS period")
            )
        )
    decoded: dict[str, Any] = {}
    for kind in MAPPING_FILES:
        code_column = "seasonal" if kind == "seasonal" else f"{kind}_code"
        if code_column not in col:
            continue
        codes = col[code_column]
        text = _decode(codes, mappings.get(kind))
        decoded[kind] = text
        if kind in mappings:
            checks.append(
                Check(
                    pc.and_(pc.is_valid(codes), pc.is_null(text)),
                    said(f"{code_column} ", codes, f" is not in {survey}.{kind}"),
                )
            )
    reason = evaluate(checks, n)
    if "series_title" in col:
        title = col["series_title"]
    elif all(k in decoded for k in DECODED_CODES):
        title = pc.binary_join_element_wise(
            decoded["sector"], ": ", decoded["measure"], " (", decoded["class"], "), ", decoded["duration"], ""
        )
    else:
        title = pa.nulls(n, pa.string())
    base_year = col.get("base_year", pa.nulls(n, pa.string()))
    columns: dict[str, Any] = {
        "series_id": series_id,
        "source_kind": constant("bulk", n, pa.string()),
        "series_title": title,
        "seasonal": col["seasonal"],
        "seasonal_text": decoded.get("seasonal", pa.nulls(n, pa.string())),
        "base_year": pc.if_else(pc.equal(base_year, "-"), pa.scalar(None, pa.string()), base_year),
        "footnote_codes": col.get("footnote_codes", pa.nulls(n, pa.string())),
        "begin_year": _year_or_null(col["begin_year"]),
        "begin_period": col["begin_period"],
        "end_year": _year_or_null(col["end_year"]),
        "end_period": col["end_period"],
        "source_file": label(name, n),
    }
    for kind in DECODED_CODES:
        code_column = f"{kind}_code"
        columns[code_column] = col.get(code_column, pa.nulls(n, pa.string()))
        text_column = "sector_name" if kind == "sector" else f"{kind}_text"
        columns[text_column] = decoded.get(kind, pa.nulls(n, pa.string()))
    typed = build_table(BLS_SERIES, columns, lineage)
    reason = add_duplicate_reasons(reason, typed, ("series_id",))
    valid, rejected = split_rows(typed, _raw_with_line(raw), reason, lineage.source)
    if tsv.malformed.num_rows:
        rejected = pa.concat_tables([rejected, _malformed_rejects(tsv, lineage.source)])
    return Parsed(valid=valid, rejected=rejected, rows_in=n + tsv.malformed.num_rows)


def _year_or_null(text: Any) -> Any:
    return parse_years(text)[0]


# ----------------------------------------------------------------------------------------------------------------
# API v2 responses
# ----------------------------------------------------------------------------------------------------------------

API_FIELDS = ("year", "period", "value", "footnotes")
API_RAW_SCHEMA = pa.schema([("series_id", pa.string()), *((f, pa.string()) for f in API_FIELDS)])


@dataclass
class ApiParsed:
    observations: Parsed
    series: Parsed | None  # the catalog block, when the request asked for it


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def _footnote_codes(footnotes: Any) -> tuple[str | None, bool]:
    """``[{"code": "P", ...}, {}]`` -> ``("P", True)``; the flag is False when the shape is not a footnote list."""
    if footnotes is None:
        return None, True
    if not isinstance(footnotes, list) or not all(isinstance(f, dict) for f in footnotes):
        return None, False
    codes = [str(f["code"]).strip() for f in footnotes if f.get("code")]
    return (",".join(codes) or None), True


def _api_series(document: Any, series_id: str, name: str, part_key: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise PayloadRejected(f"{name} is not a BLS API response object", check="schema.api", part_key=part_key)
    status = document.get("status")
    if status != "REQUEST_SUCCEEDED":
        messages = "; ".join(str(m) for m in document.get("message") or []) or "no message"
        raise PayloadRejected(f"BLS API status {status!r} in {name}: {messages}", check="api.status", part_key=part_key)
    results = document.get("Results")
    series_list = results.get("series") if isinstance(results, dict) else None
    if not isinstance(series_list, list):
        raise PayloadRejected(
            f"changed schema in {name}: no Results.series list", check="schema.api", part_key=part_key
        )
    for series in series_list:
        if isinstance(series, dict) and series.get("seriesID") == series_id:
            if not isinstance(series.get("data"), list):
                raise PayloadRejected(
                    f"changed schema in {name}: series {series_id} has no data list",
                    check="schema.api",
                    part_key=part_key,
                )
            return series
    messages = "; ".join(str(m) for m in document.get("message") or [])
    raise PayloadRejected(
        f"series {series_id} is not in {name}" + (f" (API messages: {messages})" if messages else ""),
        check="api.series",
        part_key=part_key,
    )


def parse_api_response(payload: bytes, series_id: str, lineage: Lineage, name: str, part_key: str) -> ApiParsed:
    """One series of a BLS API v2 response to ``bls_observation`` rows (and ``bls_series`` from its catalog).

    The response may hold other series too (the extractor coalesces requests); only ``series_id`` is staged
    from this landing.

    Raises
    ------
    PayloadRejected
        Not JSON (truncated), HTML, a status other than REQUEST_SUCCEEDED, the series absent, or a field missing
        from every observation (a changed schema).
    """
    document = load_json_document(payload, name, part_key)
    series = _api_series(document, series_id, name, part_key)
    data = series["data"]
    objects = [o if isinstance(o, dict) else {} for o in data]
    for field in ("year", "period", "value"):
        if objects and not any(field in o for o in objects):
            raise PayloadRejected(
                f"changed schema in {name}: field {field!r} is missing from every observation of {series_id}",
                check="schema.api",
                part_key=part_key,
            )
    footnotes = [_footnote_codes(o.get("footnotes")) for o in objects]
    raw = pa.table(
        {
            "series_id": constant(series_id, len(objects), pa.string()),
            "year": pa.array([_text(o.get("year")) for o in objects], pa.string()),
            "period": pa.array([_text(o.get("period")) for o in objects], pa.string()),
            "value": pa.array([_text(o.get("value")) for o in objects], pa.string()),
            "footnotes": pa.array([_text(o.get("footnotes")) for o in objects], pa.string()),
        },
        schema=API_RAW_SCHEMA,
    )
    not_object = pa.array([not isinstance(o, dict) for o in data], pa.bool_())
    bad_footnotes = pa.array([not ok for _, ok in footnotes], pa.bool_())
    columns = {
        "series_id": raw.column("series_id"),
        "year": blank_to_null(trim(raw.column("year"))),
        "period": blank_to_null(trim(raw.column("period"))),
        "value": blank_to_null(trim(raw.column("value"))),
        "footnote_codes": pa.array([codes for codes, _ in footnotes], pa.string()),
    }
    extra = [
        Check(not_object, "observation is not a JSON object"),
        Check(bad_footnotes, said("footnotes ", raw.column("footnotes"), " is not a list of footnote objects")),
    ]
    valid, rejected = _observations(raw, columns, None, API_SOURCE_FILE, lineage, extra_checks=extra)
    observations = Parsed(valid=valid, rejected=rejected, rows_in=raw.num_rows)
    return ApiParsed(observations=observations, series=_catalog_series(series, series_id, lineage))


def _catalog_series(series: dict[str, Any], series_id: str, lineage: Lineage) -> Parsed | None:
    catalog = series.get("catalog")
    if not isinstance(catalog, dict):
        return None
    seasonality = catalog.get("seasonality")
    seasonal = _SEASONALITY_CODES.get(str(seasonality).strip().lower()) if seasonality else None
    row = {
        "series_id": series_id,
        "source_kind": "api",
        "series_title": _text(catalog.get("series_title")),
        "seasonal": seasonal,
        "seasonal_text": _text(seasonality),
        "attributes_json": json.dumps(catalog, sort_keys=True, ensure_ascii=False),
        "source_file": API_SOURCE_FILE,
    }
    columns = {k: pa.array([v], pa.string()) for k, v in row.items()}
    typed = build_table(BLS_SERIES, columns, lineage)
    raw_schema = pa.schema([(k, pa.string()) for k in row])
    return Parsed(valid=typed, rejected=rejected_schema_of(raw_schema).empty_table(), rows_in=1)
