"""The fault matrix over the full local pipeline: a source fails in every way, nothing is lost, everything converges.

Each scenario (``tests/e2e/conftest.py``) runs the whole pipeline (scheduler, extractor, transformer, modeler,
notifier on moto's server, sources replayed on 127.0.0.1 through the fault source of ``localrun.faults``) in a
fresh process, as ``make run`` does, then recovers as an operator would, and checks:

- **nothing lost**: after the faulted run, every catalog entry of the run has landed, is in a DLQ with its reason,
  or is deferred for the next run (kept in ``pending.jsonl``); every landed manifest is staged or quarantined;
- **convergence**: once the fault is gone and the DLQ redriven (or the next run made), every entry has landed,
  the DLQs are empty (but for a catalog id the source does not have, which fails in a clean run too), and the
  marts and the staging tables hold exactly what a clean run of the same scope holds.

``make test`` plays a fast subset over two datasets (the DataUSA population and one BLS API series); ``make chaos``
plays the whole matrix, bulk files, Socrata datasets and a storm of faults over the full catalog included.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from tests.conftest import FIXTURES
from tests.e2e.conftest import Scenario

pytestmark = pytest.mark.e2e

TWO = ("--dataset", "population", "--dataset", "LNS14000000")  # the DataUSA population and one BLS API series
SOCRATA = ("--dataset", "utrz-jf79", "--dataset", "9uvn-hv6j")
BULK = ("--source", "bls_bulk")
POPULATION, SERIES, PR = "datausa/population", "bls_api/LNS14000000", "bls_bulk/pr"
TIMEOUT = {"backoff_factor": 0.05, "backoff_jitter": 0.05, "read_timeout": 1.0}


def source(*faults: dict, http: dict | None = None) -> dict:
    return {"source": list(faults), **({"http": http} if http else {})}


FAST = [
    Scenario(
        id="http_503-persistent",
        fault="503, never clears",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "http_503", "endpoint": "datausa"}),
        endings={POPULATION: "dlq"},
        faulted=40,  # 8 receives (maxReceiveCount) x 5 requests (urllib3: 1 + 4 status retries)
        recovery=("redrive",),
        reason=r"HTTP 503 after retries",
    ),
    Scenario(
        id="http_429-retry-after",
        fault="429 + Retry-After: 1, clears after 2",
        target="bls_api",
        scope=TWO,
        plan=source({"kind": "http_429", "endpoint": "bls_api", "attempts": 2, "retry_after": 1}),
        faulted=2,  # retried inside one request, after the wait the source asked for
    ),
    Scenario(
        id="not_processed",
        fault="REQUEST_NOT_PROCESSED (daily quota)",
        target="bls_api",
        scope=TWO,
        plan=source({"kind": "not_processed", "endpoint": "bls_api"}),
        endings={SERIES: "deferred"},
        faulted=1,
        recovery=("next run",),
    ),
    Scenario(
        id="schema_drift-datausa",
        fault="schema drift (Population renamed), once",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "schema_drift", "endpoint": "datausa", "attempts": 1}),
        manifests={POPULATION: "quarantined"},
        faulted=1,
        recovery=("next run",),
    ),
]

# Snapshot integrity (sources that answer well-formed but incomplete or implausible snapshots). Each starts from a
# clean run of its scope where a previous good snapshot matters (``prior``), and shows the cause in a notice.
UTRZ = ("--dataset", "utrz-jf79")
PR_DATA = {"endpoint": "bls_bulk_file", "dataset": "pr.data.0.Current"}
NOT_PR_CLASS = [
    "pr.data.0.Current",
    "pr.data.1.AllData",
    "pr.duration",
    "pr.footnote",
    "pr.measure",
    "pr.period",
    "pr.seasonal",
    "pr.sector",
    "pr.series",
]


def page_fault(kind: str, notice: str) -> Scenario:
    return Scenario(
        id=f"{kind}-socrata",
        fault=f"Socrata {kind.replace('_', ' ')} (page 1 of 4), never clears",
        target="socrata utrz-jf79 rows",
        scope=UTRZ,
        plan={
            "socrata_page_size": 20,
            "source": [{"kind": kind, "endpoint": "socrata_rows", "dataset": "utrz-jf79", "page": 1}],
        },
        endings={"socrata/utrz-jf79": "held"},
        faulted=8,  # every receive pages again; the 8th (maxReceiveCount) lands the pages raw and holds them
        recovery=("next run",),
        prior=True,
        kept=True,
        notice=rf"HELD: socrata/utrz-jf79\n.*\n\nWhat was wrong \(socrata\.[a-z_]+\): {notice}",
    )


INTEGRITY_FAST = [
    page_fault("page_repeated", r"20 rows came twice"),
    Scenario(
        id="listing_omits-bulk",
        fault="the listing names 1 of 10 files (all still served)",
        target="bls_bulk listing",
        scope=BULK,
        plan=source({"kind": "listing_omits", "endpoint": "bls_bulk_listing", "files": NOT_PR_CLASS, "attempts": 1}),
        endings={PR: "held"},
        faulted=1,
        recovery=("next run",),
        prior=True,
        kept=True,
        notice=r"HELD: bls_bulk/pr(.|\n)*the listing omits 9 mirrored file\(s\) that are still served",
    ),
    Scenario(
        id="cut_body-line-first-sync",
        fault="data file cut at a line boundary, consistent Content-Length, never clears",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source({"kind": "cut_body", **PR_DATA, "keep_fraction": 0.6, "at_line_boundary": True}),
        faulted=8,  # retried; on the last receive the file is held and the rest of the release lands
        recovery=("next run",),
        notice=r"(?s)pr\.data\.0\.Current: \d+ bytes downloaded, the listing states 1613575"
        r".*not rebuilt bls_best_year",
    ),
    Scenario(
        id="year_missing-datausa",
        fault="DataUSA answers without 2015, never clears",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "year_missing", "endpoint": "datausa", "year": 2015}),
        endings={POPULATION: "held"},
        faulted=1,  # a plausible answer, not a failure: held at once, no retry
        recovery=("next run",),
        prior=True,
        kept=True,
        notice=r"HELD: datausa/population(.|\n)*no longer answers 1 years the previous snapshot had: 2015",
    ),
    Scenario(
        id="series-retired-release",
        fault="a new release without one series (PRS30006011)",
        target="bls_bulk pr",
        scope=BULK,
        plan={},
        faulted=0,
        recovery=("next run",),
        prior=True,
        replay="pr-series-retired",  # the reference is a clean run of that release: the series nowhere
        notice=r"staging/bls_observation +\d[\d,]* written \(\d[\d,]* retired: no longer upstream\)",
    ),
    Scenario(
        id="lost-staging-and-mirror-files",
        fault="a staging file and a mirrored file deleted from the bucket",
        target="bls_bulk pr",
        scope=BULK,
        plan={},
        faulted=0,
        recovery=("next run",),
        prior=True,
        damage=(
            "staging/bls_observation/source_kind=bulk/survey=pr/part-pr.data.0.Current-*.parquet",
            "landing/bls_bulk/pr/pr.series",
        ),
        notice=r"(?s)restored bls_bulk/pr: mirrored file pr\.series was missing from the bucket: written again"
        r".*staging file staging/bls_observation/source_kind=bulk/survey=pr/part-pr\.data\.0\.Current",
    ),
]

INTEGRITY_CHAOS = [
    page_fault("page_skipped", r"20 rows came twice"),
    page_fault("page_empty", r"20 rows received but the dataset counts 62"),
    page_fault("page_short", r"30 rows received but the dataset counts 62; paging stopped at a page of 10 rows"),
    Scenario(
        id="cut_body-mid-line-update",
        fault="data file cut mid-line, consistent Content-Length, never clears",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source({"kind": "cut_body", **PR_DATA, "keep_fraction": 0.6}),
        faulted=8,
        recovery=("next run",),
        endings={PR: "held"},
        prior=True,
        kept=True,
        notice=r"(?s)HELD: bls_bulk/pr.*pr\.data\.0\.Current: \d+ bytes downloaded, the listing states 1613575"
        r".*does not end with a newline",
    ),
    Scenario(
        id="series_missing-bls_api",
        fault="the answer omits a requested series, never clears",
        target="bls_api LNS14000000",
        scope=TWO,
        plan=source({"kind": "series_missing", "endpoint": "bls_api", "dataset": "LNS14000000"}),
        endings={SERIES: "dlq"},  # fetched again on every receive, never taken for unchanged; then dead-lettered
        faulted=8,
        recovery=("redrive",),
        reason=r"BLS answered without series LNS14000000",
        prior=True,
        kept=True,
    ),
]

CHAOS = [
    Scenario(
        id="timeout-http-retry",
        fault="timeout (read), clears after 2",
        target="bls_api",
        scope=TWO,
        plan=source({"kind": "timeout", "endpoint": "bls_api", "attempts": 2, "delay_seconds": 3}, http=TIMEOUT),
        faulted=2,
    ),
    Scenario(
        id="timeout-sqs-retry",
        fault="timeout (read), clears after 5",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "timeout", "endpoint": "datausa", "attempts": 5, "delay_seconds": 3}, http=TIMEOUT),
        faulted=5,  # 4 on the first receive (1 + 3 read retries), 1 on the second, which lands
    ),
    Scenario(
        id="reset-persistent",
        fault="connection reset, never clears",
        target="socrata utrz-jf79 rows",
        scope=SOCRATA,
        plan=source({"kind": "reset", "endpoint": "socrata_rows", "dataset": "utrz-jf79"}),
        endings={"socrata/utrz-jf79": "dlq"},
        recovery=("redrive",),
        reason=r"utrz-jf79",
    ),
    Scenario(
        id="http_500-bulk-file",
        fault="500, clears after 6",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source({"kind": "http_500", "endpoint": "bls_bulk_file", "dataset": "pr.data.0.Current", "attempts": 6}),
        faulted=6,  # 5 on the first receive (1 + 4 status retries), 1 on the second, which lands
    ),
    Scenario(
        id="http_429-persistent",
        fault="429 + Retry-After: 1, never clears",
        target="socrata 9uvn-hv6j metadata",
        scope=SOCRATA,
        plan=source({"kind": "http_429", "endpoint": "socrata_views", "dataset": "9uvn-hv6j", "retry_after": 1}),
        endings={"socrata/9uvn-hv6j": "dlq"},
        faulted=40,
        recovery=("redrive",),
        reason=r"HTTP 429 after retries",
    ),
    Scenario(
        id="truncated-transport",
        fault="truncated body (connection closed early), clears after 3",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "truncated", "endpoint": "datausa", "attempts": 3}),
        faulted=3,  # a body that breaks off is not retried by urllib3: three receives fail, the fourth lands
    ),
    Scenario(
        id="truncated_json-persistent",
        fault="truncated JSON (complete response), never clears",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "truncated_json", "endpoint": "datausa"}),
        manifests={POPULATION: "quarantined"},  # landed as it is on the last receive: the raw bytes survive
        faulted=8,  # 7 receives fail and return to the queue; the 8th (maxReceiveCount) lands the body
        recovery=("next run",),
    ),
    Scenario(
        id="truncated_json-bulk-file",
        fault="truncated file (complete response), once",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source(
            {"kind": "truncated_json", "endpoint": "bls_bulk_file", "dataset": "pr.data.0.Current", "attempts": 1}
        ),
        faulted=1,  # lands (a bulk file is not parsed by the extractor); its cut last line is quarantined
        recovery=("next run",),
    ),
    Scenario(
        id="html_200-persistent",
        fault="HTML page with 200, never clears",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "html_200", "endpoint": "datausa"}),
        manifests={POPULATION: "quarantined"},  # landed as it is on the last receive: the raw bytes survive
        faulted=8,  # 7 receives fail and return to the queue; the 8th (maxReceiveCount) lands the body
        recovery=("next run",),
    ),
    Scenario(
        id="html_200-bls_api-persistent",
        fault="HTML page with 200, never clears",
        target="bls_api",
        scope=TWO,
        plan=source({"kind": "html_200", "endpoint": "bls_api"}),
        manifests={SERIES: "quarantined"},  # the response is stored as received on the last receive
        faulted=8,  # one query per receive; the 8th (maxReceiveCount) lands the body for its series
        recovery=("next run",),
    ),
    Scenario(
        id="html_200-socrata-metadata-persistent",
        fault="HTML page with 200 for the metadata, never clears",
        target="socrata utrz-jf79 metadata",
        scope=SOCRATA,
        plan=source({"kind": "html_200", "endpoint": "socrata_views", "dataset": "utrz-jf79"}),
        manifests={"socrata/utrz-jf79": "quarantined"},  # metadata and rows land as received on the last receive
        faulted=8,
        recovery=("next run",),
    ),
    Scenario(
        id="html_200-bulk-file",
        fault="HTML page with 200, once",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source({"kind": "html_200", "endpoint": "bls_bulk_file", "dataset": "pr.data.0.Current", "attempts": 1}),
        faulted=1,
        recovery=("next run",),  # that file is quarantined, the others of the sync staged
    ),
    Scenario(
        id="schema_drift-bls_api",
        fault="schema drift (value renamed), once",
        target="bls_api",
        scope=TWO,
        plan=source({"kind": "schema_drift", "endpoint": "bls_api", "attempts": 1}),
        manifests={SERIES: "quarantined"},
        faulted=1,
        recovery=("next run",),
    ),
    Scenario(
        id="schema_drift-socrata",
        fault="schema drift (a field renamed), once",
        target="socrata 9uvn-hv6j rows",
        scope=SOCRATA,
        plan=source({"kind": "schema_drift", "endpoint": "socrata_rows", "dataset": "9uvn-hv6j", "attempts": 1}),
        manifests={"socrata/9uvn-hv6j": "quarantined"},
        faulted=1,
        recovery=("next run",),
    ),
    Scenario(
        id="schema_drift-bulk-header",
        fault="schema drift (header renamed), once",
        target="bls_bulk pr.data.0.Current",
        scope=BULK,
        plan=source(
            {"kind": "schema_drift", "endpoint": "bls_bulk_file", "dataset": "pr.data.0.Current", "attempts": 1}
        ),
        faulted=1,
        recovery=("next run",),
    ),
    Scenario(
        id="slow_drip",
        fault="slow drip (1 kB/s)",
        target="datausa",
        scope=TWO,
        plan=source({"kind": "slow_drip", "endpoint": "datausa", "drip_bytes_per_second": 1000}),
        faulted=1,
    ),
    Scenario(
        id="storm-full-catalog",
        fault="storm: 429, 503, RNP, HTML, reset, drip at once",
        target="every source",
        scope=(),
        plan=json.loads((FIXTURES / "faults" / "storm.json").read_text()),  # also a plan for make run
        endings={
            "socrata/utrz-jf79": "dlq",
            "bls_api/CES0000000001": "deferred",
            "bls_api/*": "landed|deferred",  # the other series of the query that met REQUEST_NOT_PROCESSED
        },
        recovery=("redrive", "next run"),
    ),
]


def expected_ending(scenario: Scenario, ref: str) -> set[str]:
    """The endings a scenario allows an entry (its first matching pattern), ``landed`` when it names none (or
    ``unchanged`` too, after a prior clean run)."""
    for pattern, endings in scenario.endings.items():
        if fnmatch.fnmatchcase(ref, pattern):
            return set(endings.split("|"))
    return {"landed", "unchanged"} if scenario.prior else {"landed"}


def check(played, record_property, chaos: bool) -> None:
    """The assertions every scenario shares; the row goes to the table first, so a failure is in it too."""
    scenario = played.scenario
    record_property("fault_matrix", {**played.row(), "chaos": chaos})
    before, after = played.before, played.after

    # the clean run is the yardstick: it must itself have landed and staged everything but permanent failures
    clean = played.reference
    assert clean.lost == [] and clean.summary()["dlq"] == len(scenario.permanent), clean.summary()
    assert all(m.ending == "staged" for m in clean.manifests.values()), clean.manifests

    # nothing lost in the faulted run: every entry landed, dead-lettered with a reason, or deferred
    assert before.lost == [], before.lost
    for ref, entry in before.entries.items():
        assert entry.ending in expected_ending(scenario, ref), (ref, entry)
        if entry.ending == "dlq" and ref not in scenario.permanent and scenario.reason:
            assert re.search(scenario.reason, entry.reason or ""), entry
    for key, manifest in before.manifests.items():
        assert manifest.ending == scenario.manifests.get(manifest.ref, "staged"), (key, manifest)
    if scenario.faulted is not None:
        assert sum(f["faulted"] for f in played.faults["source"]) == scenario.faulted, played.faults

    # convergence: after the recovery every entry has landed, the DLQs hold only permanent failures,
    # and the marts and staging equal a clean run's
    assert after.lost == [], after.lost
    for ref, entry in after.entries.items():
        wanted = ("dlq",) if ref in scenario.permanent else ("landed", "unchanged")
        if before.entries[ref].ending == "held":  # held stays the faulted run's outcome; the next run converged
            wanted = ("held",)
        assert entry.ending in wanted, (ref, entry)
    # (a next run fails the permanent ones again, into the same DLQ)
    assert {ref for _, ref in played.dead_after} == set(scenario.permanent), played.dead_after
    assert played.mart_diffs == [], played.mart_diffs
    assert played.staging_diffs == [], played.staging_diffs

    # snapshot integrity: the previous good snapshot was kept, and a notice named the cause
    assert played.kept_diffs == [], played.kept_diffs
    if scenario.notice:
        assert re.search(scenario.notice, played.output), played.output[-4000:]


@pytest.mark.parametrize("scenario", FAST + INTEGRITY_FAST, ids=str)
def test_fault_fast_subset(scenario, scenario_pool, record_property):
    check(scenario_pool.result(scenario), record_property, chaos=False)


@pytest.mark.chaos
@pytest.mark.parametrize("scenario", FAST + INTEGRITY_FAST + CHAOS + INTEGRITY_CHAOS, ids=str)
def test_fault_matrix(scenario, scenario_pool, record_property):
    check(scenario_pool.result(scenario), record_property, chaos=True)
