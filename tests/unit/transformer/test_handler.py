"""The handler, driven with events/transformer_*.json against moto: one landing of every source."""

from __future__ import annotations

import json

import pytest

from datalake.contracts import parse_pipeline_event
from datalake.lake import LakeError
from tests.conftest import load_event
from tests.unit.transformer.landing_fixtures import commit_all
from tests.unit.transformer.support import manifest_keys_of, new_service
from transformer.domain import PayloadRejected
from transformer.stores import LandingReader


@pytest.fixture
def handler(aws):
    from transformer import handler

    return handler


def test_event_files_name_the_landings_the_fixtures_commit(aws):
    # GIVEN the landings built from the fixtures, exactly per the contract
    keys = commit_all(aws)
    # THEN the event files name exactly those manifests (URL-encoded in the file, decoded here)
    landings = load_event("transformer_landings.json")
    assert manifest_keys_of(landings) == [keys[n] for n in ("bls_bulk", "bls_api", "datausa", "socrata")]
    assert all("%3D" in r["body"] for r in landings["Records"][1:])  # ingest_date= arrives as ingest_date%3D
    assert json.loads(landings["Records"][0]["body"])["Event"] == "s3:TestEvent"
    assert set(manifest_keys_of(load_event("transformer_duplicates.json"))) == {keys["bls_api"]}


def test_a_batch_of_every_source_is_staged_and_the_test_event_skipped(aws, handler, lambda_context):
    # GIVEN one committed landing per source, and the TransformQueue batch naming them after an s3:TestEvent
    keys = commit_all(aws)
    landing_before = aws.versions("landing/")

    # WHEN the handler runs on the batch
    response = handler.lambda_handler(load_event("transformer_landings.json"), lambda_context)

    # THEN no record failed (the test event included)
    assert response == {"batchItemFailures": []}
    # AND every staging table holds its rows, with lineage from the manifests
    observations = aws.staging("bls_observation")
    bulk = observations.filter(observations["source_kind"].to_numpy(zero_copy_only=False) == "bulk")
    assert bulk.num_rows == 38_412
    api = observations.filter(observations["source_kind"].to_numpy(zero_copy_only=False) == "api")
    assert api.num_rows == 59 and set(api["series_id"].to_pylist()) == {"LNS14000000"}
    assert set(api["survey"].to_pylist()) == {"ln"}
    assert aws.staging("bls_series").num_rows == 282
    population = aws.staging("population")
    assert sorted(population["year"].to_pylist()) == [2013, 2014, 2015, 2016, 2017, 2018, 2019, 2021, 2022, 2023]
    assert aws.staging("socrata_9uvn_hv6j").num_rows == 134
    assert set(observations["_run_id"].to_pylist()) == {"20261121T080000Z-0a1b2c3d"}
    # AND one dataset.staged event per landing, each a valid contract
    events = [parse_pipeline_event(e) for e in aws.events()]
    staged = {e.manifest_key: e for e in events if e.event_type.value == "dataset.staged"}
    assert set(staged) == set(keys.values())
    bulk_event = staged[keys["bls_bulk"]]
    tables = {t.table: t for t in bulk_event.tables}
    assert tables["bls_observation"].rows_in == tables["bls_observation"].rows_written == 38_412
    assert tables["bls_observation"].partitions == ["source_kind=bulk/survey=pr"]
    assert tables["bls_series"].rows_written == 282
    # AND the state table knows the freshness of every source
    for source in ("bls_bulk", "bls_api", "datausa", "socrata"):
        assert aws.state_item(f"SOURCE#{source}", "FRESHNESS")["last_staged_run_id"] == "20261121T080000Z-0a1b2c3d"
    assert aws.state_item("DATASET#bls_api#LNS14000000", "STATE")["staged_rows"] == 59
    # AND the Socrata table is registered in Glue with the staged columns
    table = aws.glue.get_table(DatabaseName="opendata_test", Name="socrata_9uvn_hv6j")["Table"]
    assert {"geocoded_column_lat", "territory_comarca"} <= {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
    # AND the raw landing is untouched
    assert aws.versions("landing/") == landing_before


def test_duplicate_delivery_three_times_gives_identical_staging_bytes(aws, handler, lambda_context):
    # GIVEN a committed landing and three deliveries of its notification (new message ids, as S3 may do)
    commit_all(aws)
    event = load_event("transformer_duplicates.json")
    handler.lambda_handler({"Records": event["Records"][:1]}, lambda_context)
    first = aws.snapshot("staging/")
    assert first, "the first delivery staged nothing"

    # WHEN the other deliveries arrive
    response = handler.lambda_handler({"Records": event["Records"][1:]}, lambda_context)

    # THEN they succeed and staging holds the same objects with the same bytes
    assert response == {"batchItemFailures": []}
    assert aws.snapshot("staging/") == first
    # AND only the first delivery published anything (the others were answered by idempotency)
    staged = [e for e in aws.events() if e["event_type"] == "dataset.staged"]
    assert len(staged) == 1


class FlakyLanding(LandingReader):
    """The landing port, with S3 refusing to read one manifest (a transient fault)."""

    def __init__(self, lake, refused_key: str) -> None:
        super().__init__(lake)
        self.refused_key = refused_key

    def manifest_bytes(self, key, version_id=None):
        if key == self.refused_key:
            raise LakeError("simulated S3 outage")
        return super().manifest_bytes(key, version_id)


class BuggyLanding(LandingReader):
    """The landing port of a transformer with a bug: every part it reads is wrongly rejected."""

    def read_part(self, part):
        raise PayloadRejected("simulated transformer bug", check="schema.datausa", part_key=part.key)


def serving(handler, landing_port):
    """The handler's service, as composed from the settings, with another landing port."""
    service = new_service()
    service.ports.landing = landing_port(service.ports.landing.lake)
    return handler.service.use(service)


def test_a_transient_failure_fails_only_its_record(aws, handler, lambda_context):
    # GIVEN the landings, and S3 refusing to read one of them (a transient fault)
    keys = commit_all(aws)
    event = load_event("transformer_landings.json")

    # WHEN the batch is handled
    with serving(handler, lambda lake: FlakyLanding(lake, keys["datausa"])):
        response = handler.lambda_handler(event, lambda_context)

    # THEN only the DataUSA record is reported failed, so only it returns to the queue
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["messageId"]}]}
    assert aws.keys("staging/population/") == []
    assert aws.keys("staging/socrata_9uvn_hv6j/")
    # AND once S3 answers again, the retried record stages (its idempotency record was released)
    with serving(handler, LandingReader):
        retry = handler.lambda_handler({"Records": [event["Records"][3]]}, lambda_context)
    assert retry == {"batchItemFailures": []}
    assert aws.staging("population").num_rows == 10


def test_a_notification_for_another_bucket_fails_its_record(aws, handler, lambda_context):
    event = load_event("transformer_landings.json")
    record = dict(event["Records"][2])
    record["body"] = record["body"].replace('"name": "test-lake"', '"name": "someone-elses-bucket"')
    response = handler.lambda_handler({"Records": [event["Records"][0], record]}, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


def test_a_reprocess_invoke_stages_a_quarantined_landing_again_once_the_fix_is_deployed(aws, handler, lambda_context):
    # GIVEN the DataUSA landing quarantined by a transformer bug (a check that wrongly rejects it)
    keys = commit_all(aws)
    record = load_event("transformer_landings.json")["Records"][3]
    with serving(handler, BuggyLanding):
        assert handler.lambda_handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}
    assert aws.keys("staging/population/") == []
    assert aws.keys("quarantine/datausa/population/")

    # AND the fix deployed: a redelivery of the notification is still answered by idempotency, nothing staged
    with serving(handler, LandingReader):
        assert handler.lambda_handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}
    assert aws.keys("staging/population/") == []

    # WHEN the operator invokes the reprocess sample (events/transformer_reprocess.json names that manifest)
    request = load_event("transformer_reprocess.json")
    assert request["reprocess"] == [keys["datausa"]]
    response = handler.lambda_handler(request, lambda_context)

    # THEN the landing is staged, the outcome says so, and a dataset.staged event goes out
    [result] = response["reprocessed"]
    assert result["manifest_key"] == keys["datausa"] and result["status"] == "staged"
    assert aws.staging("population").num_rows == 10
    staged = [e for e in aws.events() if e["event_type"] == "dataset.staged"]
    assert [e["manifest_key"] for e in staged] == [keys["datausa"]]


def test_a_reprocess_invoke_reports_a_missing_landing_and_refuses_keys_outside_landing(aws, handler, lambda_context):
    from pydantic import ValidationError

    keys = commit_all(aws)
    missing = keys["datausa"].replace(".manifest.json", "0.manifest.json")
    response = handler.lambda_handler({"reprocess": [missing, keys["datausa"]]}, lambda_context)
    assert [r["status"] for r in response["reprocessed"]] == ["missing", "staged"]
    for bad in (["staging/population/part-x.parquet"], ["landing/../staging/x.manifest.json"], []):
        with pytest.raises(ValidationError):
            handler.lambda_handler({"reprocess": bad}, lambda_context)
