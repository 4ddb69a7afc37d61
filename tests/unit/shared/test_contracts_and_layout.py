"""Contracts validate untrusted input; keys built from input cannot leave their prefix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from datalake import layout
from datalake.contracts import (
    DatasetStaged,
    ExtractRequest,
    Manifest,
    ManifestPart,
    ScheduleRequest,
    Source,
    StagedTable,
    parse_pipeline_event,
)

RUN = "20261121T080000Z-0123abcd"
WHEN = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("dataset", ["../etc", "a/b", "LNS1400000/../../x", ".hidden", "", "ünïcode", "x" * 65])
def test_extract_request_rejects_unsafe_dataset_ids(dataset):
    with pytest.raises(ValidationError):
        ExtractRequest(run_id=RUN, source=Source.SOCRATA, dataset=dataset)


def test_dataset_id_must_match_its_source():
    with pytest.raises(ValidationError, match="not a valid socrata id"):
        ExtractRequest(run_id=RUN, source=Source.SOCRATA, dataset="LNS14000000")
    with pytest.raises(ValidationError, match="not a valid bls_api id"):
        ExtractRequest(run_id=RUN, source=Source.BLS_API, dataset="lns14000000")


def test_extract_request_round_trips_and_forbids_extra_fields():
    request = ExtractRequest(run_id=RUN, source=Source.BLS_API, dataset="LNS14000000", requested_at=WHEN)
    assert ExtractRequest.model_validate_json(request.model_dump_json()) == request
    assert request.idempotency_key == f"{RUN}#bls_api#LNS14000000"
    with pytest.raises(ValidationError, match="Extra inputs"):
        ExtractRequest.model_validate({**request.model_dump(mode="json"), "surprise": 1})


def test_reversed_year_window_is_refused():
    with pytest.raises(ValidationError, match="after end_year"):
        ExtractRequest.model_validate(
            {
                "run_id": RUN,
                "source": "bls_api",
                "dataset": "LNS14000000",
                "params": {"start_year": 2024, "end_year": 2020},
            }
        )


def test_schedule_request_rules():
    with pytest.raises(ValidationError, match="needs start_year"):
        ScheduleRequest(trigger="backfill")
    with pytest.raises(ValidationError, match="reserved"):
        ScheduleRequest(trigger="schedule")


def test_landing_keys_follow_the_design():
    sha = "a" * 64
    assert layout.landing_key(Source.BLS_API, "LNS14000000", WHEN, sha) == (
        "landing/bls_api/LNS14000000/ingest_date=2026-11-21/20261121T080000Z-aaaaaaaaaaaa.json"
    )
    assert layout.manifest_key(Source.SOCRATA, "9uvn-hv6j", WHEN, sha).endswith("-aaaaaaaaaaaa.manifest.json")
    assert layout.landing_part_key(Source.SOCRATA, "9uvn-hv6j", WHEN, sha, 3, ".json").endswith(
        "20261121T080000Z-aaaaaaaaaaaa/part-00003.json"
    )
    assert layout.bulk_mirror_key("pr", "pr.data.0.Current") == "landing/bls_bulk/pr/pr.data.0.Current"
    assert layout.is_manifest_key(layout.manifest_key(Source.DATAUSA, "population", WHEN, sha))


def test_a_bls_api_response_has_a_key_of_its_own_that_is_no_dataset_and_no_manifest():
    sha = "0123456789ab" + "c" * 52
    key = layout.bls_api_response_key(WHEN, sha)
    assert key == "landing/bls_api/_responses/ingest_date=2026-11-21/20261121T080000Z-0123456789ab.json"
    assert layout.is_bls_api_response_key(key) and not layout.is_manifest_key(key)
    with pytest.raises(ValueError):  # "_responses" is no series id: nothing mistakes it for a landing
        layout.parse_landing_key(key)
    with pytest.raises(ValueError):
        layout.bls_api_response_key(WHEN, "../../x")
    part = ManifestPart(key=key, sha256=sha, bytes=10, records=3, select_series="LNS14000000")
    assert part.select_series == "LNS14000000"
    with pytest.raises(ValidationError):
        ManifestPart(key=key, sha256=sha, bytes=10, select_series="../x")


@pytest.mark.parametrize("name", ["../pr.series", "pr/../../x", "cu.data.0.Current", "pr.data/../../x", ""])
def test_bulk_file_names_from_a_listing_cannot_escape(name):
    with pytest.raises(ValueError):
        layout.bulk_mirror_key("pr", name)


def test_partition_values_are_key_safe():
    assert layout.staging_partition_prefix("bls_observation", {"source_kind": "bulk", "survey": "pr"}) == (
        "staging/bls_observation/source_kind=bulk/survey=pr/"
    )
    with pytest.raises(ValueError):
        layout.staging_partition_prefix("bls_observation", {"survey": "../x"})
    with pytest.raises(ValueError):
        layout.mart_prefix("reports", "Bad-Name")


def test_event_keys_are_url_decoded_and_parsed():
    key = layout.decode_event_key("landing/bls_api/LNS14000000/ingest_date%3D2026-11-21/x+y.manifest.json")
    assert key == "landing/bls_api/LNS14000000/ingest_date=2026-11-21/x y.manifest.json"
    assert layout.parse_landing_key(key) == (Source.BLS_API, "LNS14000000")
    with pytest.raises(ValueError):
        layout.parse_landing_key("landing/ftp/x/y.json")
    with pytest.raises(ValueError):
        layout.parse_landing_key("landing/bls_api/../staging/y.json")


def test_manifest_parts_must_stay_in_landing():
    with pytest.raises(ValidationError, match="outside landing"):
        Manifest(
            run_id=RUN,
            source=Source.DATAUSA,
            dataset="population",
            created_at=WHEN,
            source_url="u",
            content_sha256="b" * 64,
            parts=[{"key": "staging/x", "sha256": "b" * 64, "bytes": 1}],
        )


def test_pipeline_events_round_trip_through_the_discriminator():
    event = DatasetStaged(
        run_id=RUN,
        source=Source.BLS_BULK,
        dataset="pr",
        manifest_key="landing/x.manifest.json",
        tables=[StagedTable(table="bls_observation", rows_in=3, rows_written=3)],
    )
    parsed = parse_pipeline_event(event.model_dump_json())
    assert parsed == event
    assert isinstance(parse_pipeline_event(event.model_dump(mode="json")), DatasetStaged)
    with pytest.raises(ValidationError):
        parse_pipeline_event({"event_type": "dataset.exploded", "run_id": RUN})
