"""The Glue tables' columns in stacks/catalog.yaml, rendered from the Python schemas: a new column is written once.

The schemas the code writes are the source of truth: ``transformer.schemas.STATIC_TABLES`` for the staging tables,
``modeler.registry.MARTS`` for the marts. ``make glue-tables`` rewrites each ``AWS::Glue::Table``'s ``Columns`` and
``PartitionKeys`` in stacks/catalog.yaml from them, and leaves every other line as it is (comments included); the tests
fail, naming the table, while the template and the schemas disagree.

    python -m checks.glue_tables           # exit 1 and print what differs
    python -m checks.glue_tables --write   # rewrite stacks/catalog.yaml
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The catalogue's nested stack, which template.yaml includes: it declares every Glue table.
CATALOG = ROOT / "stacks" / "catalog.yaml"
# The packages whose schemas are read: the layer, the transformer's and the modeler's code (as pyproject's pytest
# pythonpath puts them).
CODE_DIRS = (ROOT / "shared", ROOT / "services" / "transformer", ROOT / "services" / "modeler")

_RESOURCE = re.compile(r"^  ([A-Za-z0-9]+):\s*$")
_TYPE = re.compile(r"^    Type: AWS::Glue::Table\s*$")
_TABLE_NAME = re.compile(r"^        Name: (\S+)\s*$")
_PARTITION_KEYS = re.compile(r"^        PartitionKeys:\s*$")
_STORAGE = re.compile(r"^        StorageDescriptor:\s*$")
_COLUMNS = re.compile(r"^          Columns:\s*$")


class GlueTablesError(ValueError):
    """The template names a Glue table no schema declares, or is laid out in a way the renderer cannot edit."""


@dataclass(frozen=True)
class TableColumns:
    """What a Glue table declares: its file columns and its partition keys (``[{"Name": ..., "Type": ...}]``)."""

    columns: list[dict[str, str]]
    partition_keys: list[dict[str, str]]


def declared_tables() -> dict[str, TableColumns]:
    """Every table the pipeline writes, by its Glue name, from the code's own schemas.

    Returns
    -------
    dict[str, TableColumns]
        The three staging tables and every mart.
    """
    for folder in CODE_DIRS:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from modeler.registry import MARTS, glue_columns, glue_partition_keys
    from transformer.schemas import STATIC_TABLES
    from transformer.schemas import glue_columns as staging_columns

    tables = {
        spec.name: TableColumns(
            columns=staging_columns(spec.schema),
            partition_keys=[{"Name": key, "Type": "string"} for key in spec.partition_keys],
        )
        for spec in STATIC_TABLES
    }
    for mart in MARTS:
        tables[mart.name] = TableColumns(columns=glue_columns(mart), partition_keys=glue_partition_keys(mart))
    return tables


def _item(column: dict[str, str], indent: int) -> str:
    return f"{' ' * indent}- {{Name: {column['Name']}, Type: {column['Type']}}}\n"


def _list_end(lines: list[str], start: int, indent: int, name: str) -> int:
    """The index after the ``- {...}`` items that follow ``lines[start]`` at ``indent``.

    Raises
    ------
    GlueTablesError
        When the list is written otherwise (block-style items, comments or anything deeper inside it): replacing
        only the flow-style lines would leave the rest behind, a template that is silently wrong.
    """
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * indent + "- "):
        if not lines[end].startswith(" " * indent + "- {"):
            raise GlueTablesError(f"Glue table {name}: write each column as `- {{Name: ..., Type: ...}}` on one line")
        end += 1
    following = lines[end] if end < len(lines) else ""
    if following.strip() and len(following) - len(following.lstrip(" ")) > indent:
        raise GlueTablesError(f"Glue table {name}: unexpected line inside a column list: {following.strip()!r}")
    return end


def _render_table(lines: list[str], table: TableColumns, name: str) -> list[str]:
    """One Glue table resource's lines, with its columns and partition keys rendered."""
    out = list(lines)
    columns_at = next((i for i, line in enumerate(out) if _COLUMNS.match(line)), None)
    if columns_at is None:
        raise GlueTablesError(f"Glue table {name}: no StorageDescriptor.Columns list at the expected indentation")
    out[columns_at + 1 : _list_end(out, columns_at, 12, name)] = [_item(c, 12) for c in table.columns]
    keys_at = next((i for i, line in enumerate(out) if _PARTITION_KEYS.match(line)), None)
    if keys_at is not None:
        del out[keys_at : _list_end(out, keys_at, 10, name)]
    if table.partition_keys:
        storage_at = next((i for i, line in enumerate(out) if _STORAGE.match(line)), None)
        if storage_at is None:
            raise GlueTablesError(f"Glue table {name}: no StorageDescriptor at the expected indentation")
        out[storage_at:storage_at] = ["        PartitionKeys:\n", *(_item(k, 10) for k in table.partition_keys)]
    return out


def render(text: str, tables: dict[str, TableColumns] | None = None) -> str:
    """The template with every Glue table's columns and partition keys taken from ``tables``.

    Parameters
    ----------
    text
        stacks/catalog.yaml's text.
    tables
        The declarations (default: ``declared_tables()``).

    Returns
    -------
    str
        The same text where the columns already agree; otherwise only those lists change.

    Raises
    ------
    GlueTablesError
        When the template declares a table no schema knows, or a schema's table is missing from the template.
    """
    tables = declared_tables() if tables is None else tables
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _RESOURCE.match(line)] + [len(lines)]
    out: list[str] = lines[: starts[0]] if starts else list(lines)
    seen: set[str] = set()
    for begin, end in zip(starts, starts[1:], strict=False):
        block = lines[begin:end]
        if len(block) > 1 and _TYPE.match(block[1]):
            name = next((m.group(1) for line in block if (m := _TABLE_NAME.match(line))), None)
            if name is None or name not in tables:
                raise GlueTablesError(f"Glue table {name or block[0].strip()} has no schema in the code")
            seen.add(name)
            block = _render_table(block, tables[name], name)
        out.extend(block)
    missing = sorted(set(tables) - seen)
    if missing:
        raise GlueTablesError(
            f"tables the code writes but stacks/catalog.yaml does not catalogue: {', '.join(missing)}"
        )
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite stacks/catalog.yaml")
    parser.add_argument("--template", type=Path, default=CATALOG)
    args = parser.parse_args(argv)
    text = args.template.read_text()
    try:
        rendered = render(text)
    except GlueTablesError as exc:
        print(f"glue-tables: {exc}", file=sys.stderr)
        return 2
    if rendered == text:
        print(f"glue-tables: {args.template.name} agrees with the schemas")
        return 0
    if args.write:
        args.template.write_text(rendered)
        print(f"glue-tables: {args.template.name} rewritten from the schemas")
        return 0
    sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), rendered.splitlines(True), "template", "schemas"))
    print("glue-tables: the template's Glue columns differ from the schemas: run `make glue-tables`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
