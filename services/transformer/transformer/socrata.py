"""Socrata (SODA) datasets: the landed metadata gives the types; the pages (JSON arrays) are read in bounded pieces.

SODA JSON omits null fields, so no schema is ever inferred from rows: the explicit Arrow schema comes from the
dataset's ``/api/views/{id}.json`` metadata. A page is a JSON array; it is cut into pieces of whole elements at
``}`` ``,`` ``{`` boundaries, and each piece is parsed by pyarrow's JSON reader as one ``{"rows": [...]}`` object,
so memory stays bounded by the piece size and parsing stays in C++.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from transformer.domain import (
    Check,
    Lineage,
    PayloadRejected,
    build_table,
    evaluate,
    parse_numbers,
    said,
    split_rows,
    territory_keys,
)
from transformer.readers import ByteStream, load_json_document, looks_like_html
from transformer.schemas import TableSpec, snake_case, socrata_table_name

MAX_ELEMENT_BYTES = 64 << 20
# A page is read in pieces of this size: casting costs about 2 ms a call whatever the rows, so the 4 MB halves
# of an 8 MB piece cast a row about a third cheaper than 2 MB ones would; memory holds a few pieces (staging the
# 1M-row benchmark peaks at about 340 MB RSS, against 310 MB with undivided 4 MB pieces).
PAGE_PIECE_BYTES = 8 << 20
# A piece at least this large is parsed as two halves at once (pyarrow's parser releases the GIL): parsing is the
# longest step of staging a large page; below it, handing half to a thread costs more than it saves.
SPLIT_PARSE_BYTES = 1 << 20
TEXT_TYPES = frozenset({"text", "html", "email", "phone", "plain_text"})
NUMBER_TYPES = frozenset({"number", "money", "double", "percent"})
DATE_TYPES = frozenset({"calendar_date", "date", "floating_timestamp"})
FIXED_TIME_TYPES = frozenset({"fixed_timestamp"})
POINT = pa.struct([("type", pa.string()), ("coordinates", pa.list_(pa.float64()))])
LOCATION = pa.struct([("latitude", pa.string()), ("longitude", pa.string()), ("human_address", pa.string())])
URL = pa.struct([("url", pa.string()), ("description", pa.string())])
COMARCA_NAMES = ("comarca", "nom_comarca", "comarca_nom")
MUNICIPALITY_NAMES = ("municipi", "nom_municipi", "municipi_nom", "municipio", "municipality", "poblacio", "poblaci")
_DATE_SHAPE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?$"
)


@dataclass(frozen=True)
class SocrataColumn:
    field_name: str  # the SODA field name, as the JSON rows spell it
    column: str  # the staging column name (snake_case)
    data_type: str  # SODA dataTypeName

    @property
    def wire_type(self) -> pa.DataType:
        if self.data_type == "checkbox":
            return pa.bool_()
        if self.data_type == "point":
            return POINT
        if self.data_type == "location":
            return LOCATION
        if self.data_type == "url":
            return URL
        return pa.string()

    @property
    def staged_fields(self) -> list[pa.Field]:
        if self.data_type in NUMBER_TYPES:
            return [pa.field(self.column, pa.float64())]
        if self.data_type in DATE_TYPES:
            return [pa.field(self.column, pa.timestamp("us"))]
        if self.data_type in FIXED_TIME_TYPES:
            return [pa.field(self.column, pa.timestamp("us", tz="UTC"))]
        if self.data_type == "checkbox":
            return [pa.field(self.column, pa.bool_())]
        if self.data_type in {"point", "location"}:
            return [pa.field(f"{self.column}_lat", pa.float64()), pa.field(f"{self.column}_lon", pa.float64())]
        return [pa.field(self.column, pa.string())]


@dataclass(frozen=True)
class SocrataPlan:
    """How one dataset's rows are read (``row_type``) and staged (``spec``)."""

    dataset: str
    columns: tuple[SocrataColumn, ...]
    comarca: str | None  # the staging column the territory_comarca key is computed from
    municipality: str | None
    spec: TableSpec = field(init=False)

    def __post_init__(self) -> None:
        fields = [f for c in self.columns for f in c.staged_fields]
        fields += [pa.field("territory_comarca", pa.string()), pa.field("territory_municipality", pa.string())]
        object.__setattr__(
            self, "spec", TableSpec(name=socrata_table_name(self.dataset), columns=tuple(fields), snapshot=True)
        )

    @property
    def row_type(self) -> pa.StructType:
        return pa.struct([(c.field_name, c.wire_type) for c in self.columns])

    @property
    def raw_schema(self) -> pa.Schema:
        """Rejected rows keep the fields as received, named by their staging column."""
        return pa.schema([(c.column, c.wire_type) for c in self.columns])


# SODA's system field ``:id``, which the extractor requests with every page (older landings lack it: null).
ROW_ID = SocrataColumn(field_name=":id", column="_row_id", data_type="text")

SUPPORTED_TYPES = TEXT_TYPES | NUMBER_TYPES | DATE_TYPES | FIXED_TIME_TYPES | {"checkbox", "point", "location", "url"}


def plan_from_metadata(payload: bytes, dataset: str, name: str, part_key: str) -> SocrataPlan:
    """The staging plan of a dataset from its landed ``/api/views/{id}.json`` metadata.

    Raises
    ------
    PayloadRejected
        Metadata that is not JSON, has no columns, names a type this stage cannot cast, or two fields that map
        to one column name.
    """
    document = load_json_document(payload, name, part_key)
    raw_columns = document.get("columns") if isinstance(document, dict) else None
    if not isinstance(raw_columns, list) or not raw_columns:
        raise PayloadRejected(f"metadata {name} lists no columns", check="schema.metadata", part_key=part_key)
    columns: list[SocrataColumn] = []
    seen: set[str] = set()
    ordered = sorted(
        (c for c in raw_columns if isinstance(c, dict)),
        key=lambda c: c.get("position") if isinstance(c.get("position"), int) else 1 << 30,
    )
    for raw in ordered:
        field_name, data_type = raw.get("fieldName"), raw.get("dataTypeName")
        if not isinstance(field_name, str) or not isinstance(data_type, str):
            raise PayloadRejected(
                f"metadata {name} has a column without fieldName/dataTypeName: {raw.get('name')!r}",
                check="schema.metadata",
                part_key=part_key,
            )
        if data_type not in SUPPORTED_TYPES:
            raise PayloadRejected(
                f"column {field_name!r} of {dataset} has Socrata type {data_type!r}, which staging cannot cast "
                f"(supported: {', '.join(sorted(SUPPORTED_TYPES))})",
                check="schema.type",
                part_key=part_key,
            )
        try:
            column = snake_case(field_name)
        except ValueError as exc:
            raise PayloadRejected(
                f"metadata {name} names a field that cannot be a column: {exc}",
                check="schema.metadata",
                part_key=part_key,
            ) from exc
        if column in seen or column.startswith("territory_") or column.startswith("_"):
            raise PayloadRejected(
                f"column {field_name!r} of {dataset} collides with another column as {column!r}",
                check="schema.metadata",
                part_key=part_key,
            )
        seen.add(column)
        columns.append(SocrataColumn(field_name=field_name, column=column, data_type=data_type))
    staged = [f.name for c in columns for f in c.staged_fields]
    clashes = sorted({n for n in staged if staged.count(n) > 1})
    if clashes:
        raise PayloadRejected(
            f"columns of {dataset} would stage under the same name: {', '.join(clashes)}",
            check="schema.metadata",
            part_key=part_key,
        )
    texts = [c.column for c in columns if c.data_type in TEXT_TYPES]
    columns.append(ROW_ID)  # the extractor asks for it to prove the snapshot whole; it names the row upstream
    return SocrataPlan(
        dataset=dataset,
        columns=tuple(columns),
        comarca=_pick(texts, COMARCA_NAMES, "comarca"),
        municipality=_pick(texts, MUNICIPALITY_NAMES, "municipi"),
    )


def _pick(columns: list[str], preferred: tuple[str, ...], fragment: str) -> str | None:
    for name in preferred:
        if name in columns:
            return name
    return next((c for c in columns if fragment in c), None)


# ----------------------------------------------------------------------------------------------------------------
# Reading a JSON array of rows in bounded pieces
# ----------------------------------------------------------------------------------------------------------------

_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{},]')
_LEADING = b"\xef\xbb\xbf \t\r\n"


def _exact_split(piece: bytes) -> tuple[int | None, bool]:
    """Scan ``piece`` (which starts at an element) honouring strings and nesting.

    Returns the offset of the last top-level ``,`` between elements (None if none) and whether the piece ends
    outside any string or nested value, i.e. whether it holds only whole elements.
    """
    depth, last, inside = 0, None, False
    for match in _TOKENS.finditer(piece):
        token = match.group()
        first = token[:1]
        if first == b'"':
            inside = len(token) < 2 or not token.endswith(b'"') or _escaped_end(token)
            continue
        inside = False
        if first in b"{[":
            depth += 1
        elif first in b"}]":
            depth -= 1
        elif depth == 0:
            last = match.start()
    return last, depth == 0 and not inside


def _escaped_end(token: bytes) -> bool:
    """A string token whose final quote is escaped (an odd run of backslashes before it) is unterminated."""
    run = len(token) - 1 - len(token[:-1].rstrip(b"\\"))
    return run % 2 == 1


def _parse_elements(content: bytes | memoryview, row_type: pa.StructType) -> pa.StructArray:
    wrapped = b"".join((b'{"rows":[', content, b"]}"))  # one copy of the piece (a view), not one per '+'
    table = pj.read_json(
        pa.BufferReader(wrapped),
        read_options=pj.ReadOptions(block_size=len(wrapped) + 64, use_threads=False),
        parse_options=pj.ParseOptions(
            explicit_schema=pa.schema([("rows", pa.list_(row_type))]),
            newlines_in_values=True,
            unexpected_field_behavior="infer",
        ),
    )
    if table.num_rows != 1:
        raise pa.ArrowInvalid(f"expected one array of rows, found {table.num_rows} top-level values")
    return table.column(0).chunk(0).flatten()


def _parse_checked(
    content: bytes | memoryview, row_type: pa.StructType
) -> tuple[pa.StructArray, pa.ArrowInvalid | None]:
    """``_parse_elements``, then the UTF-8 check of ``_utf8_checked``, whose failure is returned, not raised: a
    piece's JSON errors are reported before its encoding errors, whichever half holds them."""
    elements = _parse_elements(content, row_type)
    try:
        elements.validate(full=True)
    except pa.ArrowInvalid as exc:
        return elements, exc
    return elements, None


# One worker thread for the second halves, started on first use and kept for the life of the process.
_HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="json-half")


def _parse_piece(
    piece: bytes | memoryview, row_type: pa.StructType, split_bytes: int
) -> list[tuple[pa.StructArray, pa.ArrowInvalid | None]]:
    """The elements of ``piece`` (whole elements, comma-separated), with their UTF-8 check (``_parse_checked``).

    A piece of at least ``split_bytes`` is parsed as two halves at once, the second on a helper thread (pyarrow's
    parser releases the GIL; parsing is the longest step of staging a large page). The halves are cut at a
    ``}``-``,``-``{`` boundary past the middle. A cut that fell inside a string, or between objects nested inside
    an element, leaves the first half ending inside that string or element, so the first half cannot parse: then,
    as on any failure of either half, the piece is parsed whole, exactly as a small piece is, and succeeds or fails
    as it would have. Both halves parsing therefore proves the cut lay between two elements.

    Raises
    ------
    pyarrow.ArrowInvalid
        The piece is not valid JSON (the error of parsing it whole).
    """
    middle = _BOUNDARY.search(piece, len(piece) // 2) if len(piece) >= split_bytes else None
    if middle is None:
        return [_parse_checked(piece, row_type)]
    view = memoryview(piece)  # the halves are views: the piece is copied once, by ``_parse_elements``
    second = _HELPER.submit(_parse_checked, view[middle.end() - 1 :], row_type)
    try:
        first = _parse_checked(view[: middle.start() + 1], row_type)
    except pa.ArrowInvalid:
        first = None
    try:
        rest = second.result()
    except pa.ArrowInvalid:
        rest = None
    if first is None or rest is None:
        return [_parse_checked(piece, row_type)]
    return [first, rest]


def iter_row_pieces(
    stream: ByteStream,
    row_type: pa.StructType,
    name: str,
    part_key: str,
    piece_bytes: int = PAGE_PIECE_BYTES,
    split_bytes: int = SPLIT_PARSE_BYTES,
) -> Iterator[pa.StructArray]:
    """The elements of a JSON array of objects, as struct arrays of about ``piece_bytes`` of input each (a piece
    of at least ``split_bytes`` is parsed as two halves at once, and comes as two arrays; ``_parse_piece``).

    Raises
    ------
    PayloadRejected
        Empty, HTML, not an array, truncated, or invalid JSON; or an element whose types differ from
        ``row_type`` (pyarrow names the field); or text that is not UTF-8.
    """
    buf, eof, started, want = b"", False, False, piece_bytes
    while True:
        while not eof and len(buf) < want:
            chunk = stream.read(piece_bytes)
            if chunk:
                buf += chunk
            else:
                eof = True
        if not started:
            buf = _open_array(buf, name, part_key)
            started = True
        if eof:
            yield from _final_piece(buf, row_type, name, part_key, split_bytes)
            return
        boundary = _last_boundary(buf)
        if boundary is None:
            want = _grow(len(buf), name, part_key)
            continue
        piece, rest = memoryview(buf)[: boundary.start() + 1], buf[boundary.end() - 1 :]
        try:
            parsed = _parse_piece(piece, row_type, split_bytes)
        except pa.ArrowInvalid as exc:
            # The cheap cut may have landed inside a string or a nested array: find the true one and retry.
            piece = bytes(piece)
            cut, whole = _exact_split(piece)
            if whole:
                raise _invalid(name, part_key, exc) from exc
            if cut is None:
                want = _grow(len(buf), name, part_key)
                continue
            piece, rest = piece[:cut], buf[cut + 1 :].lstrip()
            try:
                parsed = [_parse_checked(piece, row_type)]
            except pa.ArrowInvalid as again:
                raise _invalid(name, part_key, again) from again
        buf, want = rest, piece_bytes
        yield from _utf8_checked(parsed, name, part_key)


def _grow(size: int, name: str, part_key: str) -> int:
    if size >= MAX_ELEMENT_BYTES:
        raise PayloadRejected(
            f"{name} holds a JSON element larger than {MAX_ELEMENT_BYTES >> 20} MB, or is not a JSON array of rows",
            check="payload.json",
            part_key=part_key,
        )
    return size * 2


def _open_array(buf: bytes, name: str, part_key: str) -> bytes:
    body = buf.lstrip(_LEADING)
    if not body:
        raise PayloadRejected(f"{name} is empty", check="payload.empty", part_key=part_key)
    if looks_like_html(body[:512]):
        snippet = body[:60].decode("utf-8", "replace")
        raise PayloadRejected(
            f"{name} is an HTML page, not data (starts with {snippet!r})", check="payload.html", part_key=part_key
        )
    if not body.startswith(b"["):
        snippet = body[:120].decode("utf-8", "replace")
        raise PayloadRejected(
            f"{name} is not a JSON array of rows (starts with {snippet!r})", check="payload.json", part_key=part_key
        )
    return body[1:].lstrip()


def _last_boundary(buf: bytes) -> re.Match[bytes] | None:
    window = 1 << 16
    while True:
        start = max(0, len(buf) - window)
        last = None
        for match in _BOUNDARY.finditer(buf, start):
            last = match
        if last is not None or start == 0:
            return last
        window *= 4


def _final_piece(
    buf: bytes, row_type: pa.StructType, name: str, part_key: str, split_bytes: int
) -> Iterator[pa.StructArray]:
    body = buf.rstrip()
    if not body.endswith(b"]"):
        raise PayloadRejected(
            f"{name} is truncated: the JSON array of rows is not closed", check="payload.json", part_key=part_key
        )
    body = body[:-1].rstrip()
    if not body:
        return
    try:
        parsed = _parse_piece(body, row_type, split_bytes)
    except pa.ArrowInvalid as exc:
        raise _invalid(name, part_key, exc) from exc
    yield from _utf8_checked(parsed, name, part_key)


def _utf8_checked(
    parsed: list[tuple[pa.StructArray, pa.ArrowInvalid | None]], name: str, part_key: str
) -> Iterator[pa.StructArray]:
    """pyarrow's JSON reader copies string bytes as they are: a latin-1 export would stage as text no reader can
    decode, or crash the territory keys. ``_parse_checked`` validated every string as UTF-8 (in C++, without
    copies); a piece with any invalid text is rejected before any of its rows is yielded."""
    for _, error in parsed:
        if error is not None:
            raise PayloadRejected(
                f"{name} is not UTF-8 text (SODA serves UTF-8; a re-encoded export?): {error}",
                check="payload.encoding",
                part_key=part_key,
            ) from error
    for elements, _ in parsed:
        yield elements


def _invalid(name: str, part_key: str, exc: Exception) -> PayloadRejected:
    text = str(exc)
    if "changed from" in text:
        return PayloadRejected(
            f"changed schema in {name}: a field's JSON type differs from the dataset metadata ({text})",
            check="schema.types",
            part_key=part_key,
        )
    return PayloadRejected(f"{name} is not valid JSON: {text}", check="payload.json", part_key=part_key)


# ----------------------------------------------------------------------------------------------------------------
# Casting rows to the staging schema
# ----------------------------------------------------------------------------------------------------------------


def check_fields(elements: pa.StructArray, plan: SocrataPlan, name: str, part_key: str) -> None:
    """Fields the metadata does not declare mean the dataset's schema changed.

    Raises
    ------
    PayloadRejected
        Naming the undeclared fields.
    """
    declared = {c.field_name for c in plan.columns}
    extra = [f.name for f in elements.type if f.name not in declared]
    if extra:
        raise PayloadRejected(
            f"changed schema in {name}: field(s) {', '.join(sorted(extra))} are not in the dataset metadata",
            check="schema.columns",
            part_key=part_key,
        )


def _date_column(text: Any, data_type: pa.DataType) -> tuple[Any, Any]:
    """Cast ISO-8601 text to a timestamp; ``bad`` marks text that is not a valid date.

    Dates repeat (a register holds a few thousand distinct days over millions of rows): the shape and the cast run
    once per distinct text, and their results are spread back to the rows. Whether they repeat is judged first on
    the first eighth of the rows, so a column of mostly distinct times is not hashed for nothing; either way each
    row gets the same value and the same verdict.
    """
    sample = text.slice(0, max(1, len(text) // 8))
    if pc.count_distinct(sample).as_py() * 4 >= len(sample):
        return _date_values(text, data_type)
    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks != 1 else encoded.chunk(0)
    if len(encoded.dictionary) * 4 < len(encoded):
        values, bad = _date_values(encoded.dictionary, data_type)
        return values.take(encoded.indices), pc.fill_null(bad.take(encoded.indices), False)
    return _date_values(text, data_type)


def _date_values(text: Any, data_type: pa.DataType) -> tuple[Any, Any]:
    shaped = pc.fill_null(pc.match_substring_regex(text, _DATE_SHAPE), False)
    try:
        return pc.cast(text, data_type), pc.and_(pc.is_valid(text), pc.invert(shaped))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # some value is out of range (month 13): find them one column-wide pass at a time
    date_part = pc.utf8_slice_codeunits(text, 0, 10)
    valid_day = pc.is_valid(pc.strptime(date_part, format="%Y-%m-%d", unit="s", error_is_null=True))
    usable = pc.and_(shaped, pc.fill_null(valid_day, False))
    values = pc.cast(pc.if_else(usable, text, pa.scalar(None, pa.string())), data_type)
    return values, pc.and_(pc.is_valid(text), pc.invert(usable))


def _coordinates(column: SocrataColumn, value: Any) -> tuple[Any, Any, Any]:
    """(lat, lon, bad) of a point (``coordinates: [lon, lat]``) or a location (``latitude``/``longitude``)."""
    if column.data_type == "point":
        coordinates = pc.struct_field(value, "coordinates")
        pair = pc.equal(pc.list_value_length(coordinates), 2)
        if not pc.all(pair).as_py():  # some point has not two coordinates: its lat and lon stay null
            coordinates = pc.if_else(pair, coordinates, None)
        lon, lat = pc.list_element(coordinates, 0), pc.list_element(coordinates, 1)
        bad = pc.and_(pc.is_valid(value), pc.or_(pc.is_null(lat), pc.is_null(lon)))
        return lat, lon, bad
    lat, bad_lat = parse_numbers(pc.struct_field(value, "latitude"))
    lon, bad_lon = parse_numbers(pc.struct_field(value, "longitude"))
    return lat, lon, pc.or_(bad_lat, bad_lon)


def cast_rows(
    elements: pa.StructArray, plan: SocrataPlan, lineage: Lineage, first_record: int
) -> tuple[pa.Table, pa.Table]:
    """Rows as received -> (staged rows in ``plan.spec``'s schema, rejected raw rows with their reason)."""
    n = len(elements)
    fields = [pc.struct_field(elements, c.field_name) for c in plan.columns]
    raw = pa.Table.from_arrays(fields, schema=plan.raw_schema)
    columns: dict[str, Any] = {}
    checks: list[Check] = []
    for column, value in zip(plan.columns, fields, strict=True):
        kind = column.data_type
        if kind in NUMBER_TYPES:
            numbers, bad = parse_numbers(pc.utf8_trim_whitespace(value))
            columns[column.column] = numbers
            checks.append(Check(bad, said(f"{column.column} ", value, " is not a number")))
        elif kind in DATE_TYPES or kind in FIXED_TIME_TYPES:
            staged_type = column.staged_fields[0].type
            dates, bad = _date_column(pc.utf8_trim_whitespace(value), staged_type)
            columns[column.column] = dates
            checks.append(Check(bad, said(f"{column.column} ", value, " is not a date")))
        elif kind in {"point", "location"}:
            lat, lon, bad = _coordinates(column, value)
            columns[f"{column.column}_lat"], columns[f"{column.column}_lon"] = lat, lon
            checks.append(Check(bad, f"{column.column} is not a point with a latitude and a longitude"))
        elif kind == "url":
            columns[column.column] = pc.struct_field(value, "url")
        else:
            columns[column.column] = value
    for key, source in (("territory_comarca", plan.comarca), ("territory_municipality", plan.municipality)):
        if source is not None:
            columns[key] = territory_keys(columns[source])
    typed = build_table(plan.spec, columns, lineage)
    reason = evaluate(checks, n)
    return split_rows(typed, raw, reason, lineage.source, first_record)
