"""stacks/catalog.yaml's Glue columns are rendered from the code's schemas: a column is declared once, in Python."""

from __future__ import annotations

import difflib

import pytest

from checks.glue_tables import CATALOG, GlueTablesError, TableColumns, declared_tables, main, render


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


def test_the_template_catalogues_every_table_exactly_as_the_schemas_declare_it():
    text = CATALOG.read_text()
    # 3 staging tables and every mart, each with its columns and partition keys as the code writes them
    assert len(declared_tables()) == 28
    assert render(text) == text, "stacks/catalog.yaml's Glue columns differ from the schemas: run `make glue-tables`"


def test_a_column_added_to_a_schema_reaches_its_table_and_nothing_else():
    text = CATALOG.read_text()
    tables = declared_tables()
    population = tables["population"]
    tables["population"] = TableColumns(
        columns=[*population.columns, {"Name": "margin_of_error", "Type": "double"}],
        partition_keys=population.partition_keys,
    )

    rendered = render(text, tables)

    assert changed_lines(text, rendered) == ["+            - {Name: margin_of_error, Type: double}"]
    after = rendered.splitlines()
    added = after.index("            - {Name: margin_of_error, Type: double}")
    assert after[added - 1] == "            - {Name: _run_id, Type: string}"  # population's last column, in order
    assert "Name: population" in "\n".join(after[added - 40 : added])


def test_partition_keys_are_added_and_removed_as_the_schema_says():
    text = CATALOG.read_text()
    tables = declared_tables()
    tables["population"] = TableColumns(tables["population"].columns, [{"Name": "vintage", "Type": "string"}])
    tables["bls_series"] = TableColumns(tables["bls_series"].columns, [])

    rendered = render(text, tables)

    assert sorted(changed_lines(text, rendered)) == sorted(
        [
            "+        PartitionKeys:",
            "+          - {Name: vintage, Type: string}",
            "-        PartitionKeys:",
            "-          - {Name: survey, Type: string}",
        ]
    )
    # and rendering the real schemas again restores the template exactly
    assert render(rendered) == text


def test_a_table_without_a_schema_or_a_schema_without_a_table_is_refused():
    text = CATALOG.read_text()
    tables = declared_tables()
    del tables["dim_time"]
    with pytest.raises(GlueTablesError, match="dim_time has no schema"):
        render(text, tables)
    tables = declared_tables()
    tables["fact_new"] = TableColumns([{"Name": "x", "Type": "int"}], [])
    with pytest.raises(GlueTablesError, match="does not catalogue: fact_new"):
        render(text, tables)


def test_the_command_reports_a_stale_template_and_rewrites_it(tmp_path, capsys):
    stale = tmp_path / "template.yaml"
    text = CATALOG.read_text()
    stale.write_text(text.replace("            - {Name: geography, Type: string}\n", "", 1))

    assert main(["--template", str(stale)]) == 1
    assert "+            - {Name: geography, Type: string}" in capsys.readouterr().out
    assert main(["--template", str(stale), "--write"]) == 0
    assert stale.read_text() == text


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # a column written block-style: replacing only the flow-style lines would leave "Type: int" behind
        ("            - {Name: year, Type: int}\n", "            - Name: year\n              Type: int\n"),
        # a flow-style item broken over two lines
        ("            - {Name: year, Type: int}\n", "            - {Name: year,\n                Type: int}\n"),
    ],
)
def test_a_column_list_the_renderer_cannot_edit_whole_is_refused_not_half_rewritten(old, new):
    text = CATALOG.read_text()
    assert old in text
    with pytest.raises(GlueTablesError, match="Glue table"):
        render(text.replace(old, new, 1))
