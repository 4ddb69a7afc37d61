"""Delivery faults over the full local pipeline: duplicates, poison messages, crashes and S3 write failures.

Each run is ``python -m localrun`` in a fresh process with a fault plan (``localrun.faults``), over the DataUSA
population and one BLS API series, compared with a clean run of the same scope:

- every message kind delivered three times (ExtractQueue requests, TransformQueue S3 notifications, ModelQueue and
  NotifyQueue SNS envelopes) has exactly one effect: the same landing objects, each S3 object written once, the
  same staging and marts, one summary;
- a poison message in each queue goes to its DLQ after ``maxReceiveCount`` receives while the messages delivered
  in the same batch succeed (and a request the source keeps failing does the same on the ExtractQueue);
- a crash between the landing's data part and its manifest (or between the manifest and the state update) leaves
  no landing that looks complete, and a rerun completes it;
- S3 write failures injected through botocore are retried by the SDK, or fail the message visibly (to its DLQ),
  never leaving half a landing or half a staging.

The runs of the module's selected tests start together on a few threads at the first test (each run is its own
process); every test adds its row to the fault table (``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from localrun.template import load_template
from tests.support.audit import audit_run
from tests.support.lakes import mart_differences, staging_differences
from tests.support.local_run import reference_lake, reference_run_id, run_local, run_record, session_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCOPE = ("--dataset", "population", "--dataset", "LNS14000000")
QUEUES = ("ExtractQueue", "TransformQueue", "ModelQueue", "NotifyQueue")
RUN_TS = re.compile(r"\d{8}T\d{6}Z")
POPULATION, SERIES = "datausa/population", "bls_api/LNS14000000"


def max_receives(queue: str) -> int:
    return load_template()["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"]


def landing_objects(lake: Path) -> dict[str, str]:
    """sha256 of every raw landing object (not the manifests), by key with the run's timestamp masked."""
    return {
        RUN_TS.sub("RUN_TS", p.relative_to(lake).as_posix()): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (lake / "landing").rglob("*")
        if p.is_file() and not p.name.endswith(".manifest.json")
    }


def kept(lake: Path, queue: str) -> list[dict[str, Any]]:
    path = lake / "_local" / "dead-letters.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [m for m in lines if m["queue"] == queue]


def summaries(output: str, run_id: str) -> int:
    """How many run summaries of a run the alerts inbox printed."""
    return len(re.findall(rf"^RUN {re.escape(run_id)} \(", output, re.M))


def row(fault: str, attempts: str, before: str, recovery: str, after: str, lost: int, converged: bool) -> dict:
    return {
        "fault": fault,
        "target": "queues" if "duplicate" in fault or "poison" in fault else "S3 / the function",
        "scope": "population + LNS14000000",
        "attempts": attempts,
        "faulted run": before,
        "recovery": recovery,
        "after recovery": after,
        "lost": str(lost),
        "converged": "yes" if converged else "NO",
    }


def counts(audit) -> str:
    return audit.outcome_line()


# -- the runs, started together --------------------------------------------------------------------------------


def duplicates(base: Path) -> dict[str, Any]:
    dup = run_local(
        base / "duplicates",
        *SCOPE,
        plan={
            "name": "duplicate x3",
            "record_writes": True,
            "delivery": [{"kind": "duplicate", "queue": q, "copies": 3} for q in QUEUES],
        },
    )
    return {"dup": dup}


def poison(base: Path) -> dict[str, Any]:
    lake = base / "poison"
    faulted = run_local(
        lake,
        *SCOPE,
        plan={
            "name": "poison",
            "delivery": [{"kind": "poison", "queue": q} for q in QUEUES],
            "source": [{"kind": "http_500", "endpoint": "datausa"}],  # a request the source keeps failing
        },
    )
    before = audit_run(lake, faulted.run_id)
    dead = {q: kept(lake, q) for q in ("ExtractDLQ", "TransformDLQ", "ModelDLQ", "NotifyDLQ")}
    redrive = run_local(lake, "--redrive", "ExtractDLQ")  # the source is back
    return {"lake": lake, "faulted": faulted, "before": before, "dead": dead, "redrive": redrive}


def landing_crash(base: Path) -> dict[str, Any]:
    lake = base / "landing-crash"
    faulted = run_local(
        lake,
        *SCOPE,
        plan={
            "name": "crash before the manifest; S3 500 twice",
            "aws": [
                {"kind": "crash", "key": "landing/datausa/*.manifest.json", "when": "before", "times": 1},
                {"kind": "error", "key": "landing/bls_api/*", "status": 500, "code": "InternalError", "times": 2},
            ],
        },
    )
    before = audit_run(lake, faulted.run_id)
    population = sorted(p.name for p in (lake / "landing" / "datausa" / "population").rglob("*") if p.is_file())
    staged = sorted(p.name for p in (lake / "staging" / "population").rglob("*") if p.is_file())
    redrive = run_local(lake, "--redrive", "ExtractDLQ")
    return {
        "lake": lake,
        "faulted": faulted,
        "before": before,
        "population_files": population,
        "population_staged": staged,
        "redrive": redrive,
    }


def commit_crash_and_failing_writes(base: Path) -> dict[str, Any]:
    lake = base / "commit-crash"
    faulted = run_local(
        lake,
        *SCOPE,
        plan={
            "name": "crash after the manifest; S3 denies a landing, fails a staging write",
            "aws": [
                {"kind": "crash", "key": "landing/datausa/*.manifest.json", "when": "after", "times": 1},
                {"kind": "error", "key": "landing/bls_api/*", "status": 403, "code": "AccessDenied", "times": None},
            ],
        },
    )
    before = audit_run(lake, faulted.run_id)
    series_objects = sorted(p.name for p in (lake / "landing" / "bls_api").rglob("*") if p.is_file())
    redrive = run_local(lake, "--redrive", "ExtractDLQ")
    return {"lake": lake, "faulted": faulted, "before": before, "series_objects": series_objects, "redrive": redrive}


def staging_write_failure(base: Path) -> dict[str, Any]:
    lake = base / "staging-write"
    faulted = run_local(
        lake,
        *SCOPE,
        plan={
            "name": "S3 fails every staging write of the population",
            "aws": [{"kind": "error", "key": "staging/population/*", "status": 500, "times": None}],
        },
    )
    before = audit_run(lake, faulted.run_id)
    staged_files = sorted(p.name for p in (lake / "staging").rglob("*.parquet"))
    redrive = run_local(lake, "--redrive", "TransformDLQ")
    return {"lake": lake, "faulted": faulted, "before": before, "staged_files": staged_files, "redrive": redrive}


RUNS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "test_duplicate_delivery_of_every_message_kind_has_exactly_one_effect": duplicates,
    "test_poison_messages_reach_their_dlq_after_max_receive_count_while_batch_neighbours_succeed": poison,
    "test_a_crash_between_data_part_and_manifest_and_s3_500s_leave_no_half_landing": landing_crash,
    "test_a_crash_after_the_manifest_and_denied_writes_fail_visibly_then_converge": commit_crash_and_failing_writes,
    "test_failing_staging_writes_go_to_the_transform_dlq_and_a_redrive_stages": staging_write_failure,
}


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future]]:
    """The selected tests' runs, started together (two at a time), and the clean reference."""
    base = tmp_path_factory.mktemp("delivery-faults")
    selected = [item.originalname for item in request.session.items if item.module is request.module]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="delivery-faults") as pool:
        futures = {name: pool.submit(RUNS[name], base) for name in RUNS if name in selected}
        futures["reference"] = pool.submit(reference_lake, session_root(tmp_path_factory) / "fault-references", *SCOPE)
        yield futures


# -- the tests ---------------------------------------------------------------------------------------------------


def test_duplicate_delivery_of_every_message_kind_has_exactly_one_effect(runs, record_property):
    dup = runs["test_duplicate_delivery_of_every_message_kind_has_exactly_one_effect"].result()["dup"]
    reference = runs["reference"].result()
    clean = run_record(reference, reference_run_id(reference))  # the clean run counted its writes too
    clean_output = (reference / "_local" / "clean-output.txt").read_text()
    audit = audit_run(dup.lake_dir, dup.run_id)
    sent = dup.record["faults"]["delivery"]["duplicates"]
    record_property(
        "fault_matrix",
        row(
            "duplicate delivery x3, every queue",
            ", ".join(f"{q.removesuffix('Queue')} +{sent[q]['sent']}" for q in QUEUES),
            counts(audit),
            "none needed",
            counts(audit),
            len(audit.lost),
            not mart_differences(dup.lake_dir, reference),
        ),
    )

    # GIVEN every message of every queue was delivered three times (two extra copies of each)
    assert all(sent[queue]["sent"] > 0 for queue in QUEUES), sent
    assert sent["ExtractQueue"]["sent"] == 2 * 2  # two requests, two copies each
    assert dup.stage("ExtractorFunction")["received"] == 3 * 2
    assert dup.stage("ModelerFunction")["received"] == 3 * clean["stages"]["ModelerFunction"]["received"]

    # THEN the landing objects are the clean run's, byte for byte, each written once
    assert landing_objects(dup.lake_dir) == landing_objects(reference)
    writes, clean_writes = dup.record["faults"]["writes"], clean["faults"]["writes"]
    puts = Counter(RUN_TS.sub("RUN_TS", k) for k, n in writes["PutObject"].items() for _ in range(n))
    clean_puts = Counter(RUN_TS.sub("RUN_TS", k) for k, n in clean_writes["PutObject"].items() for _ in range(n))
    landing = {k: n for k, n in puts.items() if k.startswith("landing/")}
    assert landing == {k: n for k, n in clean_puts.items() if k.startswith("landing/")}
    assert set(landing.values()) == {1}
    # AND staging and the marts were written as often as in a clean run (once per object), with the same contents
    for prefix in ("staging/", "marts/", "quarantine/"):
        ours = sorted(n for k, n in writes["PutObject"].items() if k.startswith(prefix))
        theirs = sorted(n for k, n in clean_writes["PutObject"].items() if k.startswith(prefix))
        assert ours == theirs, prefix
    assert staging_differences(dup.lake_dir, reference) == []
    assert mart_differences(dup.lake_dir, reference) == []
    # AND one summary was sent, and nothing was lost
    assert summaries(dup.output, dup.run_id) == 1 == summaries(clean_output, clean["run_id"])
    assert audit.lost == [] and audit.summary()["staged"] == 2
    assert "dead-letter queues: empty" in dup.output


def test_poison_messages_reach_their_dlq_after_max_receive_count_while_batch_neighbours_succeed(runs, record_property):
    got = runs["test_poison_messages_reach_their_dlq_after_max_receive_count_while_batch_neighbours_succeed"].result()
    lake, faulted, before, dead = got["lake"], got["faulted"], got["before"], got["dead"]
    after = audit_run(lake, faulted.run_id)
    reference = runs["reference"].result()
    diffs = mart_differences(lake, reference)
    record_property(
        "fault_matrix",
        row(
            "poison in every queue + a request failing for good",
            ", ".join(
                f"{s.removesuffix('Function')} {v['failed']} failed" for s, v in faulted.record["stages"].items()
            ),
            counts(before),
            "redrive ExtractDLQ",
            counts(after),
            len(before.lost) + len(after.lost),
            not diffs,
        ),
    )
    stages = faulted.record["stages"]

    # THEN each poison sits in its queue's DLQ after maxReceiveCount failed receives ...
    for function, queue in (
        ("TransformerFunction", "TransformQueue"),
        ("ModelerFunction", "ModelQueue"),
        ("NotifierFunction", "NotifyQueue"),
    ):
        assert stages[function]["failed"] == max_receives(queue), function
        assert len(dead[queue.replace("Queue", "DLQ")]) == 1, queue
    assert "2000-01-01" in dead["TransformDLQ"][0]["body"]  # the notification of a manifest never written
    # ... the malformed ExtractRequest went there at once, with its reason; the failing request on its 8th receive
    # (maxReceiveCount), dead-lettered by the extractor itself with the reason of that last failure
    reasons = {
        json.loads(m["body"]).get("dataset"): (m["message_attributes"].get("failure_reason") or {}).get("StringValue")
        for m in dead["ExtractDLQ"]
    }
    assert reasons["../../etc/passwd"].startswith("invalid ExtractRequest")
    assert "HTTP 500" in reasons["population"]
    assert before.entries[POPULATION].ending == "dlq" and "HTTP 500" in before.entries[POPULATION].reason
    assert before.entries[POPULATION].reason_from == "failure_reason"
    assert stages["ExtractorFunction"]["failed"] == max_receives("ExtractQueue") - 1  # the last receive is done
    # AND the messages delivered beside them succeeded: the series landed, was staged and modelled
    assert before.entries[SERIES].ending == "landed" and before.lost == []
    assert stages["ModelerFunction"]["succeeded"] >= 1
    fact = lake / "marts" / "facts" / "fact_bls_observation"
    assert list(fact.glob("survey=*/year=*/fact_bls_observation.parquet"))  # one object per survey and year
    # WHEN the source is back and ExtractDLQ is redriven, THEN everything converges; the poisons stay put
    assert after.lost == [] and all(e.ending == "landed" for e in after.entries.values())
    assert diffs == [] and staging_differences(lake, reference) == []
    assert [json.loads(m["body"])["dataset"] for m in kept(lake, "ExtractDLQ")] == ["../../etc/passwd"]
    assert all(len(kept(lake, q)) == 1 for q in ("TransformDLQ", "ModelDLQ", "NotifyDLQ"))


def test_a_crash_between_data_part_and_manifest_and_s3_500s_leave_no_half_landing(runs, record_property):
    got = runs["test_a_crash_between_data_part_and_manifest_and_s3_500s_leave_no_half_landing"].result()
    lake, faulted, before = got["lake"], got["faulted"], got["before"]
    after = audit_run(lake, faulted.run_id)
    reference = runs["reference"].result()
    diffs = mart_differences(lake, reference)
    aws = {f["fault"]: f for f in faulted.record["faults"]["aws"]}
    record_property(
        "fault_matrix",
        row(
            "crash between data part and manifest; S3 500 x2",
            "; ".join(f"{f['injected']} injected ({f['fault'].split(':')[0]})" for f in aws.values()),
            counts(before),
            "redrive ExtractDLQ",
            counts(after),
            len(before.lost) + len(after.lost),
            not diffs,
        ),
    )

    # THEN the crashed landing wrote its data part but no manifest: nothing looks complete, nothing was staged
    [data_part] = got["population_files"]
    assert data_part.endswith(".json") and not data_part.endswith(".manifest.json")
    assert before.entries[POPULATION].ending == "dlq" and before.entries[POPULATION].manifests == ()
    assert "the process died" in before.entries[POPULATION].reason
    assert got["population_staged"] == []
    assert faulted.stage("ExtractorFunction")["crashed_batches"] == 1
    # AND the S3 500s were retried by the SDK: the series landed on the same run, once
    assert [f["injected"] for f in aws.values()] == [1, 2]
    assert before.entries[SERIES].ending == "landed" and before.lost == []
    # WHEN the request is redriven, THEN the landing completes at the same keys and everything converges
    population = sorted(p.name for p in (lake / "landing" / "datausa" / "population").rglob("*") if p.is_file())
    assert population == sorted([data_part, data_part.removesuffix(".json") + ".manifest.json"])
    assert after.lost == [] and all(e.ending == "landed" for e in after.entries.values())
    assert diffs == [] and staging_differences(lake, reference) == []
    assert kept(lake, "ExtractDLQ") == []


@pytest.mark.chaos
def test_a_crash_after_the_manifest_and_denied_writes_fail_visibly_then_converge(runs, record_property):
    got = runs["test_a_crash_after_the_manifest_and_denied_writes_fail_visibly_then_converge"].result()
    lake, faulted, before = got["lake"], got["faulted"], got["before"]
    after = audit_run(lake, faulted.run_id)
    reference = runs["reference"].result()
    diffs = mart_differences(lake, reference)
    record_property(
        "fault_matrix",
        row(
            "crash after manifest, before state; S3 AccessDenied",
            "; ".join(f"{f['injected']} injected" for f in faulted.record["faults"]["aws"]),
            counts(before),
            "redrive ExtractDLQ",
            counts(after),
            len(before.lost) + len(after.lost),
            not diffs,
        ),
    )
    # THEN the committed landing was staged although its request crashed (and went to the DLQ with the crash as
    # its reason in the logs) ...
    population = before.entries[POPULATION]
    assert population.ending == "dlq" and "the process died" in population.reason
    [manifest] = population.manifests
    assert before.manifests[manifest].ending == "staged"
    # ... the denied series failed visibly: no object of it, every receive failed, DLQ with the reason
    series = before.entries[SERIES]
    assert series.ending == "dlq" and "AccessDenied" in series.reason and series.manifests == ()
    assert got["series_objects"] == []
    assert before.lost == []
    # WHEN both are redriven, THEN the series lands, the population's landing is written again at the same keys
    # (same bytes), and everything converges
    assert after.lost == [] and all(e.ending == "landed" for e in after.entries.values())
    assert after.entries[POPULATION].manifests == (manifest,)
    assert diffs == [] and staging_differences(lake, reference) == []
    assert kept(lake, "ExtractDLQ") == []


@pytest.mark.chaos
def test_failing_staging_writes_go_to_the_transform_dlq_and_a_redrive_stages(runs, record_property):
    got = runs["test_failing_staging_writes_go_to_the_transform_dlq_and_a_redrive_stages"].result()
    lake, faulted, before = got["lake"], got["faulted"], got["before"]
    after = audit_run(lake, faulted.run_id)
    reference = runs["reference"].result()
    diffs = mart_differences(lake, reference)
    record_property(
        "fault_matrix",
        row(
            "S3 500 on every staging write",
            f"{faulted.record['faults']['aws'][0]['injected']} injected; "
            f"transformer {faulted.stage('TransformerFunction')['failed']} failed",
            counts(before),
            "redrive TransformDLQ",
            counts(after),
            len(before.lost) + len(after.lost),
            not diffs,
        ),
    )
    # THEN the population's manifest is in the TransformDLQ, and no population staging file exists
    [manifest] = before.entries[POPULATION].manifests
    assert before.manifests[manifest].ending == "transform_dlq"
    assert not [f for f in got["staged_files"] if "population" in f]
    assert faulted.stage("TransformerFunction")["failed"] == max_receives("TransformQueue")
    assert before.lost == []
    # WHEN the TransformDLQ is redriven (S3 is back), THEN it is staged and everything converges
    assert after.manifests[manifest].ending == "staged" and after.lost == []
    assert diffs == [] and staging_differences(lake, reference) == []
    assert kept(lake, "TransformDLQ") == []


def test_a_rebuild_that_publishes_nothing_leaves_the_run_summary_as_it_was():
    """The bug the duplicate-delivery run found: a duplicate dataset.staged makes the modeler rebuild again; the
    rebuild publishes nothing and lists every mart as not published, and the notifier then sent an "updated
    summary" of a run that had not changed (the marts built earlier counted as skipped)."""
    from datetime import UTC, datetime, timedelta

    from datalake.contracts import BuiltMart, DatasetStaged, MartsBuilt, RunStarted, StagedTable
    from notifier.domain.runs import reduce_run

    run_id, start = "20261121T080000Z-0a1b2c3d", datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    started = RunStarted(run_id=run_id, trigger="manual", datasets=["datausa/population"], occurred_at=start)
    staged = DatasetStaged(
        run_id=run_id,
        source="datausa",
        dataset="population",
        manifest_key="landing/datausa/population/x.manifest.json",
        tables=[StagedTable(table="population", rows_in=10, rows_written=10)],
        occurred_at=start + timedelta(seconds=2),
    )
    built = MartsBuilt(
        run_id=run_id,
        marts=[
            BuiltMart(name="population_stats", rows=1, key="marts/reports/population_stats/population_stats.parquet")
        ],
        skipped=["bls_best_year"],
        occurred_at=start + timedelta(seconds=3),
    )
    again = MartsBuilt(
        run_id=run_id, marts=[], skipped=["population_stats", "bls_best_year"], occurred_at=start + timedelta(seconds=4)
    )

    once = reduce_run(run_id, [started, staged, built])
    twice = reduce_run(run_id, [started, staged, built, again])

    assert once.settled and twice.settled
    assert twice.digest == once.digest  # the same summary: not sent again
    assert twice.skipped_marts == ["bls_best_year"] and twice.marts == {"population_stats": 1}
