"""Bad input: every case ends in quarantine with a clear reason, an event, and the raw landing untouched.

A payload bad as a whole (truncated JSON, an HTML page, a changed header) is quarantined whole and the landing
counts as handled (no retry can fix it); bad rows are quarantined one by one beside the good rows, which stage.
"""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from datalake.contracts import Source
from tests.unit.transformer.support import FIXTURES, PR_2026, api_response, observation, s3_record, sqs_record, stage

CRLF = b"\r\n"
HEADER = b"series_id        \tyear\tperiod\t       value\tfootnote_codes"


def pr_excerpt(lines: int = 40) -> list[bytes]:
    """The first lines of the real pr.data.0.Current (header included), CRLF and padding kept."""
    return (PR_2026 / "pr.data.0.Current").read_bytes().split(CRLF)[: lines + 1]


def bulk_file(rows: list[bytes], header: bytes = HEADER) -> bytes:
    return CRLF.join([header, *rows]) + CRLF


def quarantined_events(aws) -> list[dict]:
    return [e for e in aws.events() if e["event_type"] == "dataset.quarantined"]


def rows_file(aws, key_prefix: str, table: str):
    [key] = [k for k in aws.keys(key_prefix) if k.endswith(f"rows-{table}.parquet")]
    return pq.read_table(io.BytesIO(aws.get(key))).to_pylist()


def assert_untouched(aws, before):
    assert aws.versions("landing/") == before


# -- payloads that fail as a whole ---------------------------------------------------------------------------------


def test_truncated_json_is_quarantined_whole(aws):
    # GIVEN a BLS API landing whose body was cut short (the bytes the manifest committed, truncated upstream)
    body = api_response("LNS14000000", [observation(2024, "M10", "4.1"), observation(2024, "M09", "4.1")])
    key = aws.landings.bls_api("LNS14000000", [body[: len(body) // 2]])
    before = aws.versions("landing/")

    # WHEN it is staged
    outcome = stage(aws, key)

    # THEN nothing is staged and the reason says what is wrong, with the check that failed
    assert outcome["status"] == "quarantined"
    assert aws.keys("staging/") == []
    [reason_key] = [k for k in outcome["quarantine_keys"] if k.endswith("reason.json")]
    assert reason_key.startswith("quarantine/bls_api/LNS14000000/20261121T080000Z-")
    reason = aws.json(reason_key)
    assert reason["check"] == "payload.json"
    assert "is not valid JSON (the body looks truncated)" in reason["reason"]
    assert reason["manifest_key"] == key and reason["part_key"].endswith(".json")
    # AND a dataset.quarantined event names it; the raw landing is untouched
    [event] = quarantined_events(aws)
    assert event["quarantine_key"] == reason_key and "truncated" in event["reason"]
    assert_untouched(aws, before)


def test_html_served_with_200_is_quarantined_whole(aws):
    page = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body>Try later</body></html>"
    key = aws.landings.single(Source.DATAUSA, "population", page)
    before = aws.versions("landing/")

    outcome = stage(aws, key)

    assert outcome["status"] == "quarantined"
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "payload.html"
    assert reason["reason"].endswith(
        "is an HTML page, not data (starts with '<!DOCTYPE html>\\n<html><head><title>503 Service Unavailable</')"
    )
    assert aws.keys("staging/") == []
    assert_untouched(aws, before)


def test_missing_column_is_a_changed_schema(aws):
    header = b"series_id        \tyear\tperiod\t       value"
    rows = [line.rsplit(b"\t", 1)[0] for line in pr_excerpt()[1:]]
    key = aws.landings.bulk_sync("pr", {"pr.data.0.Current": bulk_file(rows, header)})
    before = aws.versions("landing/")

    outcome = stage(aws, key)

    assert outcome["status"] == "quarantined"
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "schema.columns"
    assert "changed schema in pr.data.0.Current: missing column(s) footnote_codes" in reason["reason"]
    assert reason["part_key"] == "landing/bls_bulk/pr/pr.data.0.Current"
    assert aws.keys("staging/") == []
    assert_untouched(aws, before)


def test_extra_column_is_a_changed_schema(aws):
    rows = [line + b"\tx" for line in pr_excerpt()[1:]]
    key = aws.landings.bulk_sync("pr", {"pr.data.0.Current": bulk_file(rows, HEADER + b"\tfootnote_text")})
    before = aws.versions("landing/")

    outcome = stage(aws, key)

    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "schema.columns"
    assert "unexpected column(s) footnote_text" in reason["reason"]
    assert aws.keys("staging/") == []
    assert_untouched(aws, before)


def test_a_field_the_socrata_metadata_does_not_declare_is_a_changed_schema(aws):
    rows = json.loads((FIXTURES / "9uvn-hv6j.json").read_bytes())
    rows[5]["new_column"] = "surprise"
    key = aws.landings.socrata(
        "9uvn-hv6j", [json.dumps(rows).encode()], (FIXTURES / "9uvn-hv6j.views.json").read_bytes()
    )

    outcome = stage(aws, key)

    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "schema.columns"
    assert "field(s) new_column are not in the dataset metadata" in reason["reason"]
    assert aws.keys("staging/") == []


def test_a_part_that_does_not_match_its_manifest_is_quarantined(aws):
    # GIVEN a landing whose data object was overwritten after the manifest committed it
    body = api_response("LNS14000000", [observation(2024, "M10", "4.1")])
    key = aws.landings.bls_api("LNS14000000", [body])
    manifest = aws.json(key)
    part = manifest["parts"][0]
    manifest["parts"][0]["version_id"] = None  # read the latest version, which is not the committed one
    aws.put(key, json.dumps(manifest).encode())
    aws.put(part["key"], body.replace(b"4.1", b"9.9"))

    outcome = stage(aws, key)

    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "part.sha256"
    assert "does not match its manifest" in reason["reason"]
    assert aws.keys("staging/") == []


def test_an_api_answer_that_was_not_processed_is_quarantined(aws):
    body = json.dumps(
        {"status": "REQUEST_NOT_PROCESSED", "message": ["daily threshold reached"], "Results": {}}
    ).encode()
    key = aws.landings.bls_api("LNS14000000", [body])

    outcome = stage(aws, key)

    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["check"] == "api.status"
    assert "REQUEST_NOT_PROCESSED" in reason["reason"] and "daily threshold reached" in reason["reason"]


# -- bad rows beside good rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (
            b"PRS30006011      \t2026\tQ07\t         1.5\t",
            "period 'Q07' is not a BLS period (M01-M13, Q01-Q05, A01, S01-S03)",
        ),
        (b"PRS30006011      \t2026\tQ01\t         n/a\t", "value 'n/a' is not numeric"),
        (b"PRS30006011      \t19x6\tQ01\t         1.5\t", "year '19x6' is not a 4-digit year"),
        (b"XYZ30006011      \t2026\tQ01\t         1.5\t", "series_id 'XYZ30006011' is not a pr series"),
        (b"PRS30006011      \t2026\tQ01\t         1.5\t\textra", "line has 6 tab-separated fields, expected 5"),
    ],
    ids=["unknown-period", "non-numeric-value", "bad-year", "foreign-series", "extra-field-on-one-line"],
)
def test_a_bad_row_is_quarantined_with_its_reason_and_the_rest_stages(aws, bad_line, reason):
    good = pr_excerpt()[1:]
    key = aws.landings.bulk_sync("pr", {"pr.data.0.Current": bulk_file([*good[:10], bad_line, *good[10:]])})
    before = aws.versions("landing/")

    outcome = stage(aws, key)

    # THEN the good rows stage, the bad row is in quarantine with its reason and raw cells
    assert outcome["status"] == "staged"
    assert aws.staging("bls_observation").num_rows == len(good)
    prefix = outcome["quarantine_keys"][0].rsplit("/", 1)[0] + "/"
    [row] = rows_file(aws, prefix, "bls_observation")
    assert row["_reason"] == reason
    assert row["_source"].startswith("landing/bls_bulk/pr/pr.data.0.Current?versionId=")
    if row["_raw_line"] is None:
        assert row["_record"] == 10 and row["period"] is not None  # raw cells kept as read (padding included)
    else:
        assert row["_raw_line"] == bad_line.decode()
    # AND the counts and the event say so
    assert outcome["counts"]["rows_quarantined"] == 1
    [event] = quarantined_events(aws)
    assert f"1 of {len(good) + 1} rows rejected: {reason} (1)" in event["reason"]
    assert_untouched(aws, before)


def test_bad_api_observations_are_quarantined_with_their_reasons(aws):
    body = api_response(
        "LNS14000000",
        [
            observation(2024, "M10", "4.1"),
            observation(2024, "M14", "4.2"),
            observation(2024, "M08", "four"),
            observation(2024, "M07", "-"),  # BLS prints '-' for "not available": a null value, not an error
        ],
    )
    key = aws.landings.bls_api("LNS14000000", [body])

    outcome = stage(aws, key)

    staged = aws.staging("bls_observation").to_pylist()
    assert sorted((r["period"], r["value"]) for r in staged) == [("M07", None), ("M10", 4.1)]
    rows = rows_file(aws, outcome["quarantine_keys"][0].rsplit("/", 1)[0] + "/", "bls_observation")
    assert sorted(r["_reason"] for r in rows) == [
        "period 'M14' is not a BLS period (M01-M13, Q01-Q05, A01, S01-S03)",
        "value 'four' is not numeric",
    ]


def test_a_non_numeric_socrata_number_is_quarantined_by_row(aws):
    rows = json.loads((FIXTURES / "9uvn-hv6j.json").read_bytes())
    rows[3]["latitud"] = "41,38"  # a decimal comma
    key = aws.landings.socrata(
        "9uvn-hv6j", [json.dumps(rows).encode()], (FIXTURES / "9uvn-hv6j.views.json").read_bytes()
    )

    outcome = stage(aws, key)

    assert aws.staging("socrata_9uvn_hv6j").num_rows == len(rows) - 1
    [bad] = rows_file(aws, outcome["quarantine_keys"][0].rsplit("/", 1)[0] + "/", "socrata_9uvn_hv6j")
    assert bad["_reason"] == "latitud '41,38' is not a number" and bad["_record"] == 3


def test_one_bad_file_of_a_bulk_sync_does_not_hold_back_the_others(aws):
    # GIVEN a sync with a good data file and a changed-schema series file
    current = (PR_2026 / "pr.data.0.Current").read_bytes()
    series = (PR_2026 / "pr.series").read_bytes().replace(b"end_period", b"final_period", 1)
    files = {"pr.data.0.Current": current, "pr.series": series}
    for name in ("pr.sector", "pr.class", "pr.measure", "pr.duration", "pr.seasonal"):
        files[name] = (PR_2026 / name).read_bytes()
    key = aws.landings.bulk_sync("pr", files)

    outcome = stage(aws, key)

    # THEN the observations stage and the series file is quarantined with its reason
    assert outcome["status"] == "partial"
    assert aws.staging("bls_observation").num_rows == 38_412
    assert aws.keys("staging/bls_series/") == []
    reason = aws.json(outcome["quarantine_keys"][0])
    assert reason["part_key"] == "landing/bls_bulk/pr/pr.series"
    assert (
        "missing column(s) end_period" in reason["reason"] and "unexpected column(s) final_period" in reason["reason"]
    )
    events = {e["event_type"] for e in aws.events()}
    assert events == {"dataset.staged", "dataset.quarantined"}


def test_a_quarantined_landing_is_handled_not_retried(aws, lambda_context):
    # GIVEN a truncated landing, delivered through the queue
    from transformer import handler

    body = api_response("LNS14000000", [observation(2024, "M10", "4.1")])
    key = aws.landings.bls_api("LNS14000000", [body[:-7]])
    etag = aws.s3.head_object(Bucket=aws.bucket, Key=key)["ETag"].strip('"')
    record = sqs_record({"Records": [s3_record(aws.bucket, key, etag)]}, "11111111-2222-4333-8444-555555555555")

    # WHEN the handler runs, twice (a redelivery)
    first = handler.lambda_handler({"Records": [record]}, lambda_context)
    second = handler.lambda_handler({"Records": [record]}, lambda_context)

    # THEN the record succeeds (a permanent outcome: no retry, no DLQ) and is quarantined once
    assert first == second == {"batchItemFailures": []}
    assert len(quarantined_events(aws)) == 1
    state = aws.state_item("DATASET#bls_api#LNS14000000", "STATE")
    assert state["last_outcome"] == "quarantined" and "not valid JSON" in state["quarantine_reason"]
