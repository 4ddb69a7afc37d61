"""The transformer over hostile landings (moto in-process, no sockets): BLS TSV lines, BLS API JSON, DataUSA shapes,
Socrata pages and metadata, manifests. Each landing is staged, partly staged with its bad rows quarantined, or
quarantined whole with a reason; it never crashes the invocation (which would retry it to the DLQ for nothing),
and it never writes outside its own staging tables and its own quarantine folder."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from datalake.contracts import Source
from tests.property.strategies import (
    HTML,
    NOT_UTF8,
    bls_api_document,
    datausa_document,
    payloads,
    socrata_page,
    socrata_views,
    to_bytes,
)
from tests.unit.transformer.support import TransformerAws, stage, transformer_aws

OUTCOMES = {"staged", "partial", "quarantined", "stale"}
# Each example stages through moto: few of them, and no shrinking (it can take minutes there); with derandomize the
# failing example is the same on every run, printed whole.
FEWER = settings(max_examples=15, phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(scope="module")
def aws() -> Iterator[TransformerAws]:
    with transformer_aws() as kit:
        yield kit


def written(aws: TransformerAws, before: set[str]) -> set[str]:
    return set(aws.keys("")) - before


def check_outcome(outcome: dict, new_keys: set[str], aws: TransformerAws, allowed: tuple[str, ...]) -> None:
    assert outcome["status"] in OUTCOMES, outcome
    for key in outcome["staged_keys"]:  # what was staged, a reader can read: valid UTF-8 text included
        aws.parquet(key).validate(full=True)
    outside = sorted(k for k in new_keys if not k.startswith(("landing/", *allowed)))
    assert outside == [], outside
    if outcome["status"] == "quarantined":
        assert outcome["quarantine_keys"], outcome  # a reason.json, or the rejected rows, is there to read
    counts = outcome["counts"]
    assert counts["rows_written"] + counts["rows_quarantined"] <= counts["rows_in"] or counts["rows_in"] == 0


# -- BLS bulk: tab-separated lines ---------------------------------------------------------------------------------

HEADERS = [
    b"series_id        \tyear\tperiod\t       value\tfootnote_codes",
    b"series_id\tyear\tperiod\tvalue\tfootnote_codes",
    b"series_id\tyear\tperiod\tvalue",
    b"seriesid\tyear\tperiod\tvalue\tfootnote_codes",
    b"series_id\tyear\tperiod\tvalue\tfootnote_codes\textra",
]
cells = st.tuples(
    st.sampled_from(["PRS30006032", "PRS85006092", "LNS14000000", "", "../../x", "PRS" + "9" * 40, "prs30006032"]),
    st.sampled_from(["2024", "1995", "20x4", "", "99999", "-1"]),
    st.sampled_from(["Q01", "Q05", "M13", "A01", "X99", "", "q01"]),
    st.sampled_from(["1.5", "-", "", "inf", "nan", "1,2", "1e308", "-0.0", "abc"]),
    st.sampled_from(["", "R", "P", "1,P", "\u00e9"]),
)
tsv_line = st.one_of(
    cells.map(lambda c: f"{c[0]:<17}\t{c[1]}\t{c[2]}\t{c[3]:>12}\t{c[4]}".encode()),
    st.text(max_size=30).map(str.encode),
    st.sampled_from([b"\t\t\t", b"", b"PRS30006032\t2024", *NOT_UTF8, HTML[0], b"a\tb\tc\td\te\tf\tg"]),
)


@FEWER
@given(
    header=st.sampled_from(HEADERS),
    lines=st.lists(tsv_line, max_size=12),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    prefix=st.sampled_from([b"", b"\xef\xbb\xbf", HTML[1], b"\xff\xfe"]),
)
@example(header=HEADERS[0], lines=[b"PRS30006032     \t2024\tQ01\t         1.5\t"], newline=b"\n", prefix=b"")
def test_bulk_tsv_lines_stage_quarantine_or_reject_within_their_prefixes(aws, header, lines, newline, prefix):
    body = prefix + newline.join([header, *lines]) + newline
    before = set(aws.keys(""))
    key = aws.landings.bulk_sync("pr", {"pr.data.0.Current": body})
    outcome = stage(aws, key)
    check_outcome(
        outcome,
        written(aws, before),
        aws,
        (
            "staging/bls_observation/source_kind=bulk/survey=pr/",
            # the group's rows a later sync no longer holds (hypothesis examples share one bucket)
            "staging/bls_observation_retired/source_kind=bulk/survey=pr/",
            "quarantine/bls_bulk/pr/",
        ),
    )
    if outcome["status"] == "quarantined" and outcome["quarantine_keys"][0].endswith("reason.json"):
        reason = aws.json(outcome["quarantine_keys"][0])
        assert reason["reason"] and reason["check"] and reason["part_key"] == "landing/bls_bulk/pr/pr.data.0.Current"


# -- BLS API, DataUSA ---------------------------------------------------------------------------------------------


@FEWER
@given(body=payloads(bls_api_document("LNS14000000")))
@example(
    body=to_bytes(
        {"status": "REQUEST_SUCCEEDED", "Results": {"series": [{"seriesID": "LNS14000000", "data": [1, "x", None]}]}}
    )
)
def test_bls_api_json_stages_or_quarantines_within_its_prefixes(aws, body):
    before = set(aws.keys(""))
    key = aws.landings.single(Source.BLS_API, "LNS14000000", body)
    outcome = stage(aws, key)
    check_outcome(
        outcome,
        written(aws, before),
        aws,
        (
            "staging/bls_observation/source_kind=api/survey=ln/",
            "staging/bls_series/survey=ln/",
            "quarantine/bls_api/LNS14000000/",
        ),
    )


@FEWER
@given(body=payloads(datausa_document))
def test_datausa_shapes_stage_or_quarantine_within_their_prefixes(aws, body):
    before = set(aws.keys(""))
    key = aws.landings.single(Source.DATAUSA, "population", body)
    outcome = stage(aws, key)
    check_outcome(outcome, written(aws, before), aws, ("staging/population/", "quarantine/datausa/population/"))


# -- Socrata ------------------------------------------------------------------------------------------------------


@FEWER
@given(
    views=st.one_of(socrata_views.map(to_bytes), payloads(socrata_views)),
    pages=st.lists(st.one_of(socrata_page.map(to_bytes), payloads(socrata_page)), min_size=1, max_size=3),
)
@example(  # found by this test: a column name without a usable character (see the test at the end)
    views=to_bytes(
        {"columns": [{"fieldName": "comarca", "dataTypeName": "text"}, {"fieldName": "", "dataTypeName": "text"}]}
    ),
    pages=[b"[]"],
)
def test_socrata_pages_and_metadata_stage_or_quarantine_within_their_prefixes(aws, views, pages):
    before = set(aws.keys(""))
    key = aws.landings.socrata("9uvn-hv6j", pages, views)
    outcome = stage(aws, key)
    check_outcome(outcome, written(aws, before), aws, ("staging/socrata_9uvn_hv6j/", "quarantine/socrata/9uvn-hv6j/"))


# -- Manifests ----------------------------------------------------------------------------------------------------

manifest_documents = st.fixed_dictionaries(
    {
        "run_id": st.sampled_from(["20261121T080000Z-0a1b2c3d", "../../x", ""]),
        "source": st.sampled_from(["datausa", "bls_api", "ftp"]),
        "dataset": st.sampled_from(["population", "../marts", "LNS14000000", "ünï"]),
        "created_at": st.sampled_from(["2026-11-21T08:00:00Z", "yesterday"]),
        "source_url": st.just("https://example.invalid"),
        "content_sha256": st.sampled_from(["ab" * 32, "zz"]),
        "parts": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(
                        [
                            "landing/datausa/population/x.json",
                            "landing/../marts/reports/x.parquet",
                            "marts/reports/population_stats/population_stats.parquet",
                            "landing/bls_api/LNS14000000/x.json",
                        ]
                    ),
                    "sha256": st.sampled_from(["cd" * 32, "nope"]),
                    "bytes": st.sampled_from([10, -1]),
                }
            ),
            max_size=3,
        ),
    }
)


@FEWER
@given(raw=st.one_of(manifest_documents.map(to_bytes), payloads(manifest_documents)))
@example(raw=to_bytes({"manifest_version": 1, "parts": []}))
def test_a_hostile_manifest_is_refused_clearly_and_nothing_is_written(aws, raw):
    from tests.unit.transformer.support import new_service
    from transformer.landing import LandingRef
    from transformer.service import InvalidManifest

    key = "landing/datausa/population/ingest_date=2026-11-21/20261121T080000Z-000000000000.manifest.json"
    etag = aws.put(key, raw)["ETag"].strip('"')
    before = set(aws.keys(""))
    service = new_service()
    landing = LandingRef(bucket=aws.bucket, key=key, etag=etag)
    try:
        manifest = service.read_manifest(landing)
    except InvalidManifest as exc:
        assert str(exc)
        assert written(aws, before) == set()
        return
    # a valid manifest for this key: its parts are all under the landing's own prefix
    assert all(p.key.startswith("landing/datausa/population/") for p in manifest.parts)
    outcome = service.stage(landing, manifest).as_dict()
    check_outcome(outcome, written(aws, before), aws, ("staging/population/", "quarantine/datausa/population/"))


@pytest.mark.parametrize("column", ["comarca", "nom"])
def test_a_page_of_non_utf8_bytes_is_quarantined_with_its_reason(aws, column):
    """A latin-1 export (``Vall\\xe8s``). Today the transformer crashes on it when the column feeds a territory key
    (``comarca``: UnicodeDecodeError in domain.territory_keys, so the record is retried to the TransformDLQ), and
    stages it otherwise (``nom``: a Parquet string column that is not UTF-8, which no reader can decode)."""
    views = to_bytes({"columns": [{"fieldName": column, "dataTypeName": "text"}]})
    page = f'[{{"{column}": "Vall'.encode() + b"\xe8" + b's"}]'
    key = aws.landings.socrata("9uvn-hv6j", [page], views)
    outcome = stage(aws, key)
    assert outcome["status"] == "quarantined", outcome
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] in ("payload.json", "payload.encoding") and "part-00000" in reason["part_key"]


def test_the_quarantine_reason_of_a_bulk_html_page_names_the_file(aws):
    key = aws.landings.bulk_sync("pr", {"pr.data.0.Current": HTML[0]})
    outcome = stage(aws, key)
    reason = aws.json(outcome["quarantine_keys"][0])
    assert (reason["check"], reason["part_key"]) == ("payload.html", "landing/bls_bulk/pr/pr.data.0.Current")
    assert json.loads(json.dumps(reason))["landing"].startswith("untouched")


def test_socrata_metadata_with_a_field_name_without_usable_characters_is_quarantined(aws):
    """Found by the property test above: a metadata column whose fieldName has no usable character ("" or ":")
    raised a bare ValueError from schemas.snake_case, which fails the record (retried to the TransformDLQ) instead
    of quarantining the landing with the reason."""
    views = to_bytes(
        {
            "id": "9uvn-hv6j",
            "columns": [{"fieldName": "comarca", "dataTypeName": "text"}, {"fieldName": "", "dataTypeName": "text"}],
        }
    )
    key = aws.landings.socrata("9uvn-hv6j", [b"[]"], views)
    outcome = stage(aws, key)
    assert outcome["status"] == "quarantined"
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"].startswith("schema") and "field" in reason["reason"]
