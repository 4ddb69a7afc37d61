"""A Socrata extraction too long for one invocation: checkpointed, continued in follow-up messages, proven whole.

The generated dataset has 23 rows, paged 5 at a time (5 pages, the last one short). An extraction that hands over
every 2 pages takes three invocations; it must land exactly what an uninterrupted one lands, stage to the same
bytes, and prove the row count and the uniqueness of every ``:id`` across all three.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from datalake.contracts import ExtractRequest, Manifest
from localrun.replay import ReplayResponse, ReplayServer
from tests.aws_builders import clients
from tests.unit.extractor.support import bound_handler, create_test_aws, drain, quick_session, request, sqs_record

DATASET = "scal-0001"
ROWS = 23
PAGE = 5
pytestmark = pytest.mark.sockets  # the replay of the source serves pages on 127.0.0.1

FETCHED_AT = datetime(2026, 11, 21, 8, 0, 3, tzinfo=UTC)
VIEWS = {
    "id": DATASET,
    "name": "Generated register",
    "columns": [
        {"fieldName": "codi", "dataTypeName": "text"},
        {"fieldName": "nom", "dataTypeName": "text"},
        {"fieldName": "places", "dataTypeName": "number"},
        {"fieldName": "alta", "dataTypeName": "calendar_date"},
    ],
}


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    (folder / "socrata").mkdir()
    rows = [
        {
            "codi": f"S{i:04d}",
            "nom": f"Servei {i}",
            "places": str(10 + i % 7),
            "alta": f"20{10 + i % 15}-01-01T00:00:00.000",
        }
        for i in range(ROWS)
    ]
    for row in rows[::4]:
        del row["places"]  # SODA omits null fields
    (folder / "socrata" / f"{DATASET}.json").write_text(json.dumps(rows, ensure_ascii=False))
    (folder / "socrata" / f"{DATASET}.views.json").write_text(json.dumps(VIEWS))
    return folder


def socrata_extraction(aws, replay: ReplayServer, pages_per_invocation: int):
    """The connector on moto and the replay, with the clock fixed (so two worlds fetch "at the same time")."""
    from datalake.events import publish_event
    from datalake.lake import LakeStore
    from datalake.state import StateStore
    from extractor.checkpoint import CheckpointStore
    from extractor.http import HttpClient
    from extractor.landing import Lander
    from extractor.queues import ExtractQueues
    from extractor.socrata import SocrataExtraction

    lake, state = LakeStore(aws.bucket, aws.s3), StateStore(aws.state_table, aws.ddb)
    return SocrataExtraction(
        HttpClient(quick_session()),
        replay.base_url + "/",
        None,
        Lander(lake, state, lambda event: publish_event(event, os.environ["PIPELINE_TOPIC_ARN"], aws.sns)),
        CheckpointStore(lake, state),
        ExtractQueues(aws.dlq, aws.extract_queue, aws.sqs).send,
        max_pages_per_invocation=pages_per_invocation,
        clock=lambda: FETCHED_AT,
    )


def extract_until_landed(aws, replay: ReplayServer, pages_per_invocation: int) -> list[dict[str, Any]]:
    """Run the extraction, then each continuation message it sends, as the ExtractQueue would deliver them."""
    socrata = socrata_extraction(aws, replay, pages_per_invocation)
    current = request("socrata", DATASET, page_size=PAGE)
    outcomes = []
    while True:
        outcomes.append(socrata.run(current, PAGE))
        sent = drain(aws.sqs, aws.extract_queue)
        if not sent:
            return outcomes
        [message] = sent
        current = ExtractRequest.model_validate_json(message["Body"])


def stage_landing(aws) -> dict[str, bytes]:
    """Stage the landing with the transformer's own service; returns every staging object, key -> bytes."""
    from tests.unit.transformer.support import new_service
    from transformer.landing import LandingRef

    clients("glue")[0].create_database(DatabaseInput={"Name": os.environ["GLUE_DATABASE"]})
    [key] = [k for k in aws.keys(f"landing/socrata/{DATASET}/") if k.endswith(".manifest.json")]
    service = new_service()
    etag = aws.s3.head_object(Bucket=aws.bucket, Key=key)["ETag"]
    landing = LandingRef(bucket=aws.bucket, key=key, etag=etag)
    assert service.stage(landing, service.read_manifest(landing)).status == "staged"
    return {k: aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read() for k in aws.keys("staging/")}


def landed_manifest(aws) -> Manifest:
    [key] = [k for k in aws.keys(f"landing/socrata/{DATASET}/") if k.endswith(".manifest.json")]
    return Manifest.model_validate_json(aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read())


def page_offsets(replay: ReplayServer) -> list[int]:
    return [int(r.query["$offset"]) for r in replay.log if r.endpoint == "socrata_rows"]


def test_a_resumed_extraction_lands_and_stages_what_an_uninterrupted_one_does(replay_dir):
    worlds = {}
    for name, per_invocation in (("uninterrupted", 0), ("resumed", 2)):
        with mock_aws(), ReplayServer(replay_dir) as replay:
            aws = create_test_aws()
            outcomes = extract_until_landed(aws, replay, per_invocation)
            manifest = landed_manifest(aws)
            worlds[name] = {
                "outcomes": [o["outcome"] for o in outcomes],
                "manifest": manifest,
                "staging": stage_landing(aws),
                "offsets": page_offsets(replay),
                "counts": replay.counts["socrata_count"],
                "leftovers": [k for k in aws.keys("landing/") if "/_checkpoint/" in k],
            }
    uninterrupted, resumed = worlds["uninterrupted"], worlds["resumed"]

    # THEN the interrupted extraction took three invocations: two handed over, the third landed
    assert uninterrupted["outcomes"] == ["extracted"]
    assert resumed["outcomes"] == ["continued", "continued", "extracted"]
    # AND every page was asked for once, in order: nothing was paged again from the start
    assert uninterrupted["offsets"] == resumed["offsets"] == [0, 5, 10, 15, 20]
    # AND the count was asked once before paging and once after it, whatever the number of invocations
    assert uninterrupted["counts"] == resumed["counts"] == 2

    # AND both landed the same parts (keys, bytes, rows) and the same snapshot
    def parts(manifest: Manifest) -> list[tuple[str, str, int, int | None, str]]:
        return [(p.key, p.sha256, p.bytes, p.records, p.role) for p in manifest.parts]

    assert parts(resumed["manifest"]) == parts(uninterrupted["manifest"])
    assert resumed["manifest"].content_sha256 == uninterrupted["manifest"].content_sha256
    assert resumed["manifest"].fetched_at == uninterrupted["manifest"].fetched_at == FETCHED_AT
    # AND the proof covers all three invocations: counted 23 before and after, 23 rows, 23 distinct ids
    assert resumed["manifest"].proof == {
        "count_before": ROWS,
        "count_after": ROWS,
        "rows": ROWS,
        "duplicate_ids": 0,
        "rows_without_id": 0,
        "pages": 5,
        "page_size": PAGE,
        "invocations": 3,
    }
    assert uninterrupted["manifest"].proof["invocations"] == 1
    # AND staging holds the same objects, byte for byte
    assert resumed["staging"] and resumed["staging"] == uninterrupted["staging"]
    # AND no checkpoint is left behind
    assert resumed["leftovers"] == []


def test_a_page_that_fails_is_retried_from_the_last_checkpoint_not_from_zero(replay_dir, lambda_context):
    with mock_aws(), ReplayServer(replay_dir) as replay, ExitStack() as stack:
        aws = create_test_aws()
        handler = stack.enter_context(bound_handler(aws, replay))
        # GIVEN a source that fails the third page (offset 10) until the record's first invocation gives up
        failures = {"left": 5}  # the first try and urllib3's 4 retries

        def third_page_down(req, proceed):
            if req.endpoint == "socrata_rows" and req.query.get("$offset") == "10" and failures["left"]:
                failures["left"] -= 1
                return ReplayResponse(status=503, body=b"{}")
            return proceed()

        replay.add_hook(third_page_down)
        body = request("socrata", DATASET, page_size=PAGE).model_dump_json()

        # WHEN the record fails, then SQS delivers it again
        first = handler.lambda_handler({"Records": [sqs_record(body, "m-0")]}, lambda_context)
        assert first == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
        second = handler.lambda_handler({"Records": [sqs_record(body, "m-0", receive_count=2)]}, lambda_context)
        assert second == {"batchItemFailures": []}

        # THEN the retry resumed at the page that failed: the first two pages were asked for once
        assert [o for o in page_offsets(replay) if o != 10] == [0, 5, 15, 20]
        # AND the metadata and the count before paging come from the first invocation's checkpoint
        assert replay.counts["socrata_views"] == 1
        manifest = landed_manifest(aws)
        assert (manifest.proof["rows"], manifest.proof["duplicate_ids"], manifest.proof["invocations"]) == (ROWS, 0, 2)
        assert [p.records for p in manifest.data_parts] == [5, 5, 5, 5, 3]


def test_continuations_through_the_handler_land_once_and_stale_messages_do_nothing(replay_dir, lambda_context):
    with mock_aws(), ReplayServer(replay_dir) as replay, ExitStack() as stack:
        aws = create_test_aws()
        handler = stack.enter_context(bound_handler(aws, replay, {"SOCRATA_PAGES_PER_INVOCATION": "2"}))
        original = request("socrata", DATASET, page_size=PAGE).model_dump_json()
        delivered = [original]
        bodies = [original]
        while delivered:
            [body] = delivered
            response = handler.lambda_handler({"Records": [sqs_record(body, f"m-{len(bodies)}")]}, lambda_context)
            assert response == {"batchItemFailures": []}
            delivered = [m["Body"] for m in drain(aws.sqs, aws.extract_queue)]
            bodies += delivered

        # THEN two continuations were sent, for checkpoints 1 and 2
        continuations = [ExtractRequest.model_validate_json(b).continuation for b in bodies[1:]]
        assert [c.segment for c in continuations] == [1, 2]
        # AND the run heard of the dataset once, when it landed
        assert [e["event_type"] for e in aws.events()] == ["dataset.extracted"]
        asked = len(replay.log)

        # WHEN SQS delivers the first continuation again (at least once delivery), after the extraction ended
        again = handler.lambda_handler({"Records": [sqs_record(bodies[1], "m-dup")]}, lambda_context)

        # THEN it does nothing: no page asked, nothing landed, no event
        assert again == {"batchItemFailures": []}
        assert len(replay.log) == asked
        assert aws.events() == []
        assert len([k for k in aws.keys() if k.endswith(".manifest.json")]) == 1
        item = aws.ddb.get_item(
            TableName=aws.state_table,
            Key={"pk": {"S": f"DATASET#socrata#{DATASET}"}, "sk": {"S": "PAGING#20261121T080000Z-0a1b2c3d"}},
        )["Item"]
        assert item["cp_status"]["S"] == "done"


def test_a_record_reached_too_late_in_the_invocation_is_postponed_not_failed(replay, aws, extractor, lambda_context):
    # GIVEN an invocation with 61 s left (a 46 s budget) whose first record takes 2 s
    lambda_context.remaining_ms = 61_000

    def slow_population(req, proceed):
        answer = proceed()
        if req.endpoint == "datausa":
            answer.delay_seconds = 2.0
        return answer

    replay.add_hook(slow_population)
    event = {
        "Records": [
            sqs_record(request("datausa", "population").model_dump_json(), "m-0"),
            sqs_record(request("socrata", "utrz-jf79").model_dump_json(), "m-1"),
        ]
    }

    # WHEN the batch is handled
    response = extractor.lambda_handler(event, lambda_context)

    # THEN the first record landed and the second, with under 45 s left, went back to the queue as it was
    assert response == {"batchItemFailures": []}
    [postponed] = drain(aws.sqs, aws.extract_queue)
    assert postponed["Body"] == event["Records"][1]["body"]
    assert [r.endpoint for r in replay.log if r.endpoint.startswith("socrata")] == []
    assert [e["event_type"] for e in aws.events()] == ["dataset.extracted"]
