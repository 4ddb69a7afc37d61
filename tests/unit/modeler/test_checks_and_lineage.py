"""Quality checks and the lineage graph, on tiny inputs."""

from __future__ import annotations

import pyarrow as pa

from modeler import lineage
from modeler.checks import (
    AcceptedValues,
    CheckContext,
    CoversInputKeys,
    InRange,
    NotNull,
    RowCount,
    RowCountDelta,
    UniqueKey,
    run_checks,
)

TABLE = pa.table({"k": ["a", "b", "b", None], "v": [1.0, 2.0, None, 9.0]})
NONE = CheckContext()


def test_not_null_names_the_columns_with_nulls():
    result = NotNull(("k", "v")).evaluate(TABLE, NONE)
    assert not result.passed and result.name == "not_null(k,v)"
    assert result.detail == "k: 1 null(s); v: 1 null(s)"
    assert NotNull(("k",)).evaluate(TABLE.slice(0, 3), NONE).passed


def test_unique_key_reports_duplicated_keys():
    result = UniqueKey(("k",)).evaluate(TABLE, NONE)
    assert not result.passed and result.failing_rows == 2 and "('b',)" in result.detail
    assert UniqueKey(("k", "v")).evaluate(TABLE, NONE).passed


def test_accepted_values_ignores_nulls_and_lists_strangers():
    assert AcceptedValues("k", ("a", "b")).evaluate(TABLE, NONE).passed
    result = AcceptedValues("k", ("a",)).evaluate(TABLE, NONE)
    assert not result.passed and result.failing_rows == 2 and "'b'" in result.detail


def test_in_range_and_row_count():
    assert InRange("v", 0, 9).evaluate(TABLE, NONE).passed
    assert not InRange("v", None, 5).evaluate(TABLE, NONE).passed
    assert RowCount(1, 4).evaluate(TABLE, NONE).passed
    assert not RowCount(1, 1).evaluate(TABLE, NONE).passed


def test_row_count_delta_compares_with_the_published_version():
    check = RowCountDelta(max_drop=0.5, max_growth=1.0)
    assert check.evaluate(TABLE, CheckContext(previous_rows=None)).passed  # first publication
    assert check.evaluate(TABLE, CheckContext(previous_rows=8)).passed  # -50%: at the bound
    assert not check.evaluate(TABLE, CheckContext(previous_rows=9)).passed  # -56%
    assert not check.evaluate(TABLE, CheckContext(previous_rows=1)).passed  # +300%


def test_covers_input_keys_wants_exactly_one_row_per_input_key():
    inputs = {"obs": pa.table({"series_id": ["a", "a", "b"]})}
    ok = pa.table({"series_id": ["a", "b"]})
    assert CoversInputKeys("series_id", "obs").evaluate(ok, CheckContext(inputs=inputs)).passed
    for bad in (["a"], ["a", "b", "c"], ["a", "a", "b"]):
        table = pa.table({"series_id": bad})
        assert not CoversInputKeys("series_id", "obs").evaluate(table, CheckContext(inputs=inputs)).passed


def test_every_check_runs_even_after_a_failure():
    results = run_checks([NotNull(("k",)), UniqueKey(("k",)), RowCount(1)], TABLE, NONE)
    assert [r.passed for r in results] == [False, False, True]


def test_lineage_names_each_landing_object_with_its_runs_and_rows():
    rows = pa.table(
        {
            "x": [1, 2, 3],
            "_source": ["landing/a?versionId=1", "landing/a?versionId=1", "landing/b.json"],
            "_run_id": ["r1", "r2", "r1"],
            "_staging_file": ["staging/t/part-1.parquet", "staging/t/part-1.parquet", "staging/t/part-1.parquet"],
        }
    )
    entry = lineage.staging_input(
        "t", "all rows", rows, {"staging/t/part-1.parquet": "e1", "staging/t/part-2.parquet": "e2"}
    )
    assert entry["landing"] == [
        {"object": "landing/a?versionId=1", "run_ids": ["r1", "r2"], "rows": 2},
        {"object": "landing/b.json", "run_ids": ["r1"], "rows": 1},
    ]
    assert entry["files"] == [{"key": "staging/t/part-1.parquet", "etag": "e1"}]  # part-2 gave no row


def test_the_graph_draws_landing_to_staging_to_marts_as_mermaid_and_dot():
    report = {
        "mart": "report",
        "kind": "reports",
        "rows": 1,
        "inputs": [
            lineage.mart_input("fact", "marts/facts/fact/fact.parquet", "abc", 3),
            {
                "layer": "staging",
                "table": "t",
                "selection": "source_file=x",
                "landing": [{"object": 'landing/"odd".json', "run_ids": ["r1"], "rows": 1}],
            },
        ],
    }
    graph = lineage.build_graph([report])
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {
        ("mart:fact", "mart:report"),
        ("staging:t", "mart:report"),
        ('landing:landing/"odd".json', "staging:t"),
    }
    mermaid = lineage.to_mermaid(graph)
    assert (
        mermaid.startswith("flowchart LR\n")
        and '[["report"]]' in mermaid
        and '"' not in "".join(line.split('"')[1] for line in mermaid.splitlines() if "landing/" in line)
    )
    assert "source_file=x" in mermaid
    dot = lineage.to_dot(graph)
    assert dot.startswith("digraph lineage {") and '\\"odd\\"' in dot and '"mart:fact" -> "mart:report";' in dot
