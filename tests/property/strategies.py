"""Hypothesis strategies for hostile source payloads: JSON of any shape, near-miss versions of the real shapes,
cut bodies, HTML pages and bytes that are not UTF-8."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

HTML = [
    b"<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>",
    b"<html><head><title>Maintenance</title></head></html>",
    b"\xef\xbb\xbf  <HTML><BODY>Access Denied</BODY></HTML>",
]
NOT_UTF8 = [b"\xff\xfe\x00", b"caf\xe9", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["-", "", " 1.5 ", "M13", "Q05", "A01", "2024", "1e400", "NaN", "../..", "ünï"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)


def to_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def damaged(body: bytes) -> st.SearchStrategy[bytes]:
    """The body, or a cut, an HTML page in its place, non-UTF-8 bytes spliced in, or nothing."""
    return st.one_of(
        st.just(body),
        st.integers(min_value=0, max_value=max(0, len(body) - 1)).map(lambda n: body[:n]),
        st.sampled_from(HTML),
        st.tuples(st.integers(min_value=0, max_value=len(body)), st.sampled_from(NOT_UTF8)).map(
            lambda cut: body[: cut[0]] + cut[1] + body[cut[0] :]
        ),
        st.just(b""),
    )


def payloads(*shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes from near-miss documents of the given shapes, or any JSON, each possibly damaged."""
    documents = st.one_of(*shapes, json_values)
    return documents.map(to_bytes).flatmap(damaged) | st.binary(max_size=200)


# -- the real shapes, loosened ----------------------------------------------------------------------------------

observation = st.fixed_dictionaries(
    {
        "year": st.one_of(st.sampled_from(["2024", "2025", "1999", "20x4", "", "99999"]), scalars),
        "period": st.one_of(st.sampled_from(["M01", "M12", "M13", "Q01", "Q05", "A01", "S01", "X99"]), scalars),
        "value": st.one_of(st.sampled_from(["4.1", "-", " 3.0 ", "1,234", "inf", "nan", ""]), scalars),
    },
    optional={
        "footnotes": st.one_of(
            st.just([{}]), st.just([{"code": "P", "text": "preliminary"}]), st.lists(scalars, max_size=2), scalars
        ),
        "periodName": st.text(max_size=10),
        "latest": st.sampled_from(["true", "false"]),
    },
)


def bls_api_document(series_id: str) -> st.SearchStrategy[dict[str, Any]]:
    series = st.fixed_dictionaries(
        {"seriesID": st.one_of(st.just(series_id), st.text(max_size=12)), "data": st.lists(observation, max_size=6)},
        optional={"catalog": st.dictionaries(st.sampled_from(["series_title", "seasonality", "survey_name"]), scalars)},
    )
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from(["REQUEST_SUCCEEDED", "REQUEST_NOT_PROCESSED", "REQUEST_FAILED", ""]),
            "Results": st.one_of(st.fixed_dictionaries({"series": st.lists(series, max_size=3)}), json_values),
        },
        optional={"message": st.lists(st.text(max_size=40), max_size=3), "responseTime": scalars},
    )


population_row = st.fixed_dictionaries(
    {
        "Nation ID": st.sampled_from(["01000US", "", None]),
        "Nation": st.sampled_from(["United States", "ünited", None]),
        "Year": st.one_of(st.sampled_from([2013, 2018, "2019", "20x9", None]), scalars),
        "Population": st.one_of(st.sampled_from([316128839, 3.5, -1, "331893745", "lots", None]), scalars),
    }
)
datausa_document = st.one_of(
    st.fixed_dictionaries(
        {
            "data": st.lists(population_row, max_size=5),
            "columns": st.just(["Nation ID", "Nation", "Year", "Population"]),
            "annotations": st.one_of(st.just({"dataset_name": "ACS 1-year Estimate"}), json_values),
        }
    ),
    st.fixed_dictionaries(
        {
            "data": st.lists(population_row, max_size=5),
            "source": st.one_of(st.just([{"annotations": {"dataset_name": "ACS 5-year Estimate"}}]), json_values),
        }
    ),
)

SOCRATA_TYPES = ["text", "number", "calendar_date", "checkbox", "point", "url", "money", "fixed_timestamp", "blob"]
socrata_column = st.fixed_dictionaries(
    {
        "fieldName": st.one_of(
            st.sampled_from(["comarca", "municipi", "places", "data_alta", ":id", "a b"]), st.text(max_size=8)
        ),
        "dataTypeName": st.one_of(st.sampled_from(SOCRATA_TYPES), st.text(max_size=6)),
    },
    optional={"name": st.text(max_size=10), "position": st.integers(0, 9)},
)
socrata_views = st.fixed_dictionaries({"id": st.just("9uvn-hv6j"), "columns": st.lists(socrata_column, max_size=5)})
socrata_row = st.dictionaries(
    st.sampled_from(["comarca", "municipi", "places", "data_alta", "extra", "a b"]),
    st.one_of(
        scalars,
        st.sampled_from(["2024-01-31T00:00:00.000", "2024-13-40T00:00:00", "Vallès Oriental", "12.5"]),
        st.just({"type": "Point", "coordinates": [2.1, 41.4]}),
        st.just({"url": "https://example.org"}),
    ),
    max_size=5,
)
socrata_page = st.lists(socrata_row, max_size=6)
