"""The notifier's pure logic: when a run settles, what a summary counts, what each alarm means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from datalake.contracts import parse_pipeline_event
from notifier.domain.alarms import alarm_notice, parse_alarm
from notifier.domain.events import held_notice, quarantined_notice, stage_failed_notice
from notifier.domain.notice import MESSAGE_LIMIT_BYTES, ascii_subject, duration, fit_message, normalise_reason
from notifier.domain.runs import ledger_key, reduce_run
from notifier.domain.summary import freshness_hours, summary_counts, summary_notice
from notifier.links import ConsoleLinks
from tests.conftest import load_event

RUN = "20261122T080000Z-aa11bb22"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LINKS = ConsoleLinks(region="eu-west-1", account_id="210987654321", prefix="opendata-prod", lake_bucket="lake-b")


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def event(kind: str, ref: str | None = None, seconds: float = 0, **extra):
    data = {"run_id": RUN, "occurred_at": at(seconds), "event_type": kind, **extra}
    if ref:
        data["source"], data["dataset"] = ref.split("/")
    defaults = {
        "run.started": {"trigger": "schedule"},
        "dataset.extracted": {"manifest_key": f"landing/{ref}/m.manifest.json"},
        "dataset.unchanged": {"content_sha256": "b" * 64},
        "dataset.staged": {"manifest_key": f"landing/{ref}/m.manifest.json", "tables": []},
        "dataset.quarantined": {"manifest_key": "landing/x", "reason": "truncated JSON", "quarantine_key": "q/x"},
        "marts.built": {"marts": []},
        "dataset.held": {
            "reason": "6,000 rows received but the dataset counts 6,300",
            "check": "socrata.row_count",
            "held_key": "landing/socrata/ivft-vegh/x.held.json",
            "kept": "the previous snapshot (6,300 records, landed 2026-12-01T08:00:00, landing/socrata/ivft-vegh/m)",
        },
        "stage.failed": {"stage": "extractor", "reason": "HTTP 503 after 5 attempts", "error_type": "SourceDown"},
    }
    return parse_pipeline_event({**defaults[kind], **data})


def staged(ref: str, seconds: float, rows: int, table: str = "bls_observation"):
    return event(
        "dataset.staged",
        ref,
        seconds,
        tables=[{"table": table, "rows_in": rows, "rows_written": rows, "rows_quarantined": 1}],
    )


def built(seconds: float, **marts: int):
    return event(
        "marts.built",
        None,
        seconds,
        marts=[{"name": n, "rows": r, "key": f"marts/x/{n}.parquet"} for n, r in marts.items()],
    )


A, B, C = "bls_api/LNS14000000", "bls_api/CES0000000001", "datausa/population"


def test_a_run_settles_when_every_dataset_has_an_outcome_and_the_marts_follow_the_last_staging():
    events = [event("run.started", None, 0, datasets=[A, B, C]), event("dataset.unchanged", A, 2)]
    assert not reduce_run(RUN, events).settled
    events += [event("dataset.extracted", B, 3), staged(B, 9, 40), event("dataset.extracted", C, 4), staged(C, 12, 13)]
    report = reduce_run(RUN, events)
    assert report.pending == [] and not report.settled  # staged, but the marts are not rebuilt yet
    events.append(built(8, population_stats=1))  # a build before the last staging does not count
    assert not reduce_run(RUN, events).settled
    events.append(built(70, population_stats=1, bls_best_year=282))
    report = reduce_run(RUN, events)
    assert report.settled
    assert summary_counts(report) == {
        "extracted": 2,
        "unchanged": 1,
        "staged": 2,
        "quarantined": 0,
        "held": 0,
        "failed": 0,
    }
    assert report.tables["bls_observation"].written == 53 and report.tables["bls_observation"].quarantined == 2
    assert report.marts == {"population_stats": 1, "bls_best_year": 282}
    assert report.stage_seconds == {"extract": 4.0, "transform": 9.0, "model": 58.0, "total": 70.0}


def test_the_order_of_arrival_does_not_matter():
    events = [
        event("run.started", None, 0, datasets=[A, C]),
        event("stage.failed", A, 5),
        event("dataset.extracted", C, 2),
        staged(C, 6, 13, "population"),
        built(20, population_stats=1),
    ]
    forward, backward = reduce_run(RUN, events), reduce_run(RUN, list(reversed(events)))
    assert forward.settled and backward.settled
    assert forward.digest == backward.digest
    assert summary_counts(forward) == summary_counts(backward)


def test_nothing_staged_means_nothing_to_build():
    report = reduce_run(RUN, [event("run.started", None, 0, datasets=[A]), event("dataset.unchanged", A, 1)])
    assert report.settled and "model" not in report.stage_seconds


def test_a_failed_dataset_landed_again_is_in_flight_until_its_new_outcome():
    events = [event("run.started", None, 0, datasets=[C]), event("stage.failed", C, 1)]
    assert reduce_run(RUN, events).settled
    events.append(event("dataset.extracted", C, 600))  # redriven: landed this time
    report = reduce_run(RUN, events)
    assert not report.settled and report.pending == [C] and report.in_flight == {C}
    events += [staged(C, 601, 13, "population"), built(660, population_stats=1)]
    report = reduce_run(RUN, events)
    assert report.settled and summary_counts(report)["staged"] == 1 and summary_counts(report)["failed"] == 0


def test_without_run_started_a_run_never_settles_by_itself():
    report = reduce_run(RUN, [event("dataset.unchanged", A, 1)])
    assert report.expected is None and not report.settled
    text = summary_notice(report, "p", LINKS, closed_early=True).body
    assert "run.started was never received: the expected datasets are unknown" in text


def test_a_closed_run_lists_what_had_no_outcome():
    report = reduce_run(
        RUN,
        [
            event("run.started", None, 0, datasets=[A, B, C]),
            event("dataset.unchanged", A, 1),
            event("dataset.extracted", C, 2),
        ],
    )
    notice = summary_notice(report, "opendata-prod", LINKS, closed_early=True)
    assert notice.subject == f"[opendata-prod] Run {RUN}: 0 staged, 1 unchanged, 2 no outcome"
    assert "  no outcome         2\n" in notice.body
    assert f"  no outcome {B}: nothing was heard of it before the run was closed" in notice.body
    assert (
        f"  no outcome {C}: landed but never staged or quarantined; look for its landing in TransformDLQ" in notice.body
    )


def test_repeats_of_the_same_fact_share_a_ledger_key():
    first = event("dataset.staged", C, 5, tables=[])
    again = event("dataset.staged", C, 9, tables=[])
    assert ledger_key(first) == ledger_key(again) == f"dataset.staged#{C}"
    assert ledger_key(built(5, a=1)) == ledger_key(built(9, a=1)) != ledger_key(built(9, a=2))
    assert ledger_key(event("stage.failed", A, 1)) != ledger_key(event("stage.failed", B, 1))


def test_a_failure_fingerprint_ignores_numbers_but_not_the_dataset():
    one = stage_failed_notice(event("stage.failed", A, 1, reason="HTTP 503 after 5 attempts (12.5 s)"), "p", LINKS)
    two = stage_failed_notice(event("stage.failed", A, 2, reason="HTTP 503 after 3 attempts (30.1 s)"), "p", LINKS)
    other = stage_failed_notice(event("stage.failed", B, 2, reason="HTTP 503 after 3 attempts (30.1 s)"), "p", LINKS)
    assert one.fingerprint == two.fingerprint != other.fingerprint
    assert normalise_reason("Series LNU04032231X: 404 at 08:15:02") == "series lnu#x: # at #:#:#"


def test_subjects_are_sns_safe():
    subject = ascii_subject("[p] FAILED modeler: check «unique keys» on dim_territory — Barcelonès\n" + "x" * 200)
    assert subject.isascii() and "\n" not in subject and len(subject) < 100
    assert subject.startswith("[p] FAILED modeler: check unique keys on dim_territory Barcelones xxx")


def alarm_json(**changes) -> str:
    body = json.loads(load_event("notifier_alarm.json")["Records"][0]["body"])
    alarm = json.loads(body["Message"])
    alarm["AlarmName"] = changes.pop("name", alarm["AlarmName"]).replace("opendata-dev", "opendata-prod")
    alarm["Trigger"].update(changes)
    return json.dumps(alarm)


@pytest.mark.parametrize(
    ("trigger", "what", "todo"),
    [
        (
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"name": "FunctionName", "value": "opendata-prod-transformer"}],
            },
            "TransformerFunction invocations crashed (not single failed records).",
            "docs/operations.md#function-errors",
        ),
        (
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Duration",
                "Dimensions": [{"name": "FunctionName", "value": "opendata-prod-modeler"}],
            },
            "ModelerFunction ran close to its timeout.",
            "docs/operations.md#function-duration",
        ),
        (
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"name": "QueueName", "value": "opendata-prod-model"}],
            },
            "The oldest message in ModelQueue has waited longer than expected",
            "docs/operations.md#queue-age",
        ),
        (
            {
                "Namespace": "OpenDataPipeline",
                "MetricName": "FreshnessHours",
                "Dimensions": [{"name": "service", "value": "notifier"}, {"name": "Source", "value": "socrata"}],
            },
            "No fresh data from socrata for more than 26 hours",
            "docs/operations.md#freshness",
        ),
        (
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"name": "QueueName", "value": "opendata-prod-notify-dlq"}],
            },
            "NotifyDLQ holds messages",
            "`make redrive QUEUE=NotifyDLQ STACK=opendata`",
        ),
    ],
)
def test_each_kind_of_alarm_says_what_it_means_and_what_to_do(trigger, what, todo):
    alarm = parse_alarm(alarm_json(**trigger))
    notice = alarm_notice(alarm, "opendata-prod", LINKS)
    assert what in notice.body and todo in notice.body
    assert "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/" in notice.body


def test_a_message_that_is_not_alarm_json_is_not_an_alarm():
    assert parse_alarm("AWS Budget Notification November 21, 2026") is None
    assert parse_alarm(json.dumps({"hello": "world"})) is None


def test_durations_and_freshness():
    assert [duration(s) for s in (0.42, 59.96, 61, 3599, 3600 * 5 + 60 * 7)] == [
        "0.4s",
        "60.0s",
        "1m01s",
        "59m59s",
        "5h07m",
    ]
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert freshness_hours(now, None, None) is None
    assert freshness_hours(now, now - timedelta(hours=30), now - timedelta(hours=2), None) == 2.0


def test_a_held_snapshot_is_an_outcome_that_names_the_cause_and_what_was_kept():
    held = event("dataset.held", "socrata/ivft-vegh", 3)
    events = [event("run.started", None, 0, datasets=["socrata/ivft-vegh"]), held]
    report = reduce_run(RUN, events)
    assert report.settled  # held is the dataset's outcome: nothing was staged, so no mart build is awaited
    assert summary_counts(report)["held"] == 1
    body = summary_notice(report, "opendata-prod", LINKS).body
    assert (
        "  held socrata/ivft-vegh (socrata.row_count): 6,000 rows received but the dataset counts 6,300; kept the "
        "previous snapshot (6,300 records" in body
    )
    notice = held_notice(held, "opendata-prod", LINKS)
    assert notice.subject == "[opendata-prod] HELD socrata/ivft-vegh: socrata.row_count"
    assert "What was kept: the previous snapshot (6,300 records" in notice.body
    assert "Nothing to accept" in notice.body  # a failed proof of wholeness cannot be accepted

    acceptable = event("dataset.held", "socrata/ivft-vegh", 3, acceptable=True, check="plausibility")
    assert '"accept_drop": true' in held_notice(acceptable, "opendata-prod", LINKS).body


def test_a_mart_not_rebuilt_is_a_warning_in_the_summary_with_its_reason():
    events = [
        event("run.started", None, 0, datasets=["bls_bulk/pr"]),
        event("dataset.extracted", "bls_bulk/pr", 1),
        staged("bls_bulk/pr", 2, 10),
        event(
            "marts.built",
            None,
            3,
            marts=[],
            skipped=["bls_best_year"],
            skipped_reasons={"bls_best_year": "its input staging/bls_observation has no pr.data.0.Current"},
        ),
    ]
    body = summary_notice(reduce_run(RUN, events), "opendata-prod", LINKS).body
    assert "Nothing needs attention" not in body
    assert (
        "  not rebuilt bls_best_year: its input staging/bls_observation has no pr.data.0.Current (previous version "
        "kept)" in body
    )


def test_a_partial_quarantine_says_how_many_rows_were_staged():
    partial = event("dataset.quarantined", "bls_bulk/pr", 2, counts={"rows_written": 23_046, "rows_quarantined": 1})
    body = quarantined_notice(partial, "opendata-prod", LINKS).body
    assert "the transformer staged 23,046 rows of bls_bulk/pr and rejected 1 row (quarantined)." in body
    assert "nothing from it was staged" not in body


def test_rows_a_mart_quarantined_are_listed_in_the_summary_and_the_dataset_stays_staged():
    women = "socrata/amca-cgrp"
    quarantined = {
        "mart": "fact_catalunya_services",
        "source": "socrata",
        "dataset": "amca-cgrp",
        "rows_in": 1000,
        "rows_quarantined": 21,
        "reason": "21 of 1,000 rows not used by fact_catalunya_services (quarantined), e.g. 'Sucs' (Segrià): no "
        "municipality of Catalunya has this name",
        "quarantine_key": "quarantine/socrata/amca-cgrp/modeler/fact_catalunya_services/rows.parquet",
    }
    events = [
        event("run.started", None, 0, datasets=[women]),
        event("dataset.extracted", women, 1),
        staged(women, 2, 1000, table="socrata_amca_cgrp"),
        event("marts.built", None, 3, marts=[], quarantined=[quarantined]),
    ]
    report = reduce_run(RUN, events)
    assert summary_counts(report)["staged"] == 1 and summary_counts(report)["quarantined"] == 0
    body = summary_notice(report, "opendata-prod", LINKS).body
    assert "Nothing needs attention" not in body
    assert (
        "  rows quarantined socrata/amca-cgrp: 21 of 1,000 rows not used by fact_catalunya_services (quarantined), "
        "e.g. 'Sucs' (Segrià): no municipality of Catalunya has this name "
        "(s3://lake-b/quarantine/socrata/amca-cgrp/modeler/fact_catalunya_services/rows.parquet)" in body
    )
    # a build that sets other rows aside is another fact, not a repeat of this one
    again = event("marts.built", None, 4, marts=[], quarantined=[{**quarantined, "rows_quarantined": 20}])
    assert ledger_key(again) != ledger_key(events[-1])


CATALAN_REASON = (
    "HTTP 503 després de 5 intents: no respon el portal de la Generalitat (Àneu, Vallès, Empordà, Segrià, Penedès, "
    "Pallars Jussà, Ribera d'Ebre, Solsonès, Garrotxa, Maresme, Baix Llobregat, Urgell, Noguera, Alt Camp)"
)


def a_collapsed_run(datasets: int) -> tuple[list[str], list[str]]:
    """A run of ``datasets`` where the source went down: the first half failed, the rest was never heard of."""
    refs = [f"socrata/{i // 1000:04x}-{i % 1000:04d}" for i in range(datasets)]
    return refs[: datasets // 2], refs[datasets // 2 :]


def test_the_summary_of_a_run_where_thousands_failed_fits_one_sns_message_and_keeps_its_counts():
    failed, silent = a_collapsed_run(3000)
    report = reduce_run(
        RUN,
        [
            event("run.started", None, 0, datasets=failed + silent),
            *(event("stage.failed", ref, 5, reason=CATALAN_REASON) for ref in failed),
            event("stage.failed", None, 9, stage="modeler", reason="row_count_delta fell by 40%", error_type="Gate"),
        ],
    )

    body = summary_notice(report, "opendata-prod", LINKS, closed_early=True).body

    # fits what SNS delivers, counted in bytes: the reason's accents take two each, so counting characters (as moto
    # does) would have let more than the margin for attributes through
    assert len(body.encode()) <= MESSAGE_LIMIT_BYTES
    assert len(body.encode()) - len(body) > 4 * 1024
    # the counts are whole
    assert "  failed         1,500\n" in body and "  no outcome     1,500\n" in body
    # both long lists are cut alike, each saying how many it left out; the short one is whole
    shown_failed = body.count("  failed socrata/")
    shown_silent = body.count("  no outcome socrata/")
    assert 100 < shown_failed == shown_silent < 1500
    assert f"  ... and {1500 - shown_failed:,} more like these" in body
    assert body.count(" more like these") == 2
    assert "  modeler: Gate: row_count_delta fell by 40%" in body
    assert "lists cut to fit the 256 KB an SNS message holds; the counts above are whole" in body
    # the links follow, whole
    assert body.rstrip().endswith(LINKS.logs_query(RUN))


def test_a_summary_that_fits_is_not_cut():
    failed, silent = a_collapsed_run(40)
    events = [event("run.started", None, 0, datasets=failed + silent)]
    report = reduce_run(RUN, events + [event("stage.failed", ref, 5, reason=CATALAN_REASON) for ref in failed])

    body = summary_notice(report, "p", LINKS, closed_early=True).body

    assert "Needs attention\n" in body and "more like these" not in body
    assert body.count("  failed socrata/") == body.count("  no outcome socrata/") == 20


def test_a_message_over_the_limit_is_cut_at_a_line_and_says_so():
    body = "".join(f"line {i:06d} ·····\n" for i in range(20_000))  # 540,000 bytes, 400,000 characters

    sent = fit_message(body)

    assert len(sent.encode()) <= MESSAGE_LIMIT_BYTES
    assert sent.endswith("\n[... the rest of this message is cut: SNS delivers at most 256 KB]\n")
    kept = sent.split("\n[...")[0].split("\n")
    assert kept == [f"line {i:06d} ·····" for i in range(len(kept))]
    assert fit_message("short\n") == "short\n"
