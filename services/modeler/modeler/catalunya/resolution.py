"""How well each Catalunya source lands on the territory dimension: the ``territory_resolution`` report.

One row per staged source: its rows, how many resolved to a municipality and how (by code, by name, by a former
name, without the article, as a locality of its municipality), how many did not, and examples of those with their
reasons. Rows that resolve but whose comarca (a register's) or name (a coded source's) is not the dimension's are
counted too: the dimension wins, and the count says how often the source disagrees with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import pyarrow as pa

from modeler.catalunya.energy import ENERGY_DATASET
from modeler.catalunya.population import POPULATION_DATASET
from modeler.catalunya.services import REGISTERS, table_of
from modeler.catalunya.territory import (
    METHODS,
    MUNICIPALITIES_DATASET,
    Resolution,
    Territory,
    current_snapshot,
    resolve_codes,
    resolve_names,
)
from modeler.spec import NoInputRows

EXAMPLES = 5

TERRITORY_RESOLUTION_SCHEMA = pa.schema(
    [
        ("dataset_id", pa.string()),
        ("rows", pa.int64()),
        ("resolved", pa.int64()),
        ("unresolved", pa.int64()),
        ("resolution_rate", pa.float64()),
        *((f"by_{method}", pa.int64()) for method in METHODS),
        ("comarca_differs", pa.int64()),
        ("name_differs", pa.int64()),
        ("unresolved_examples", pa.string()),  # "example: reason" lines
    ]
)

Resolver = Callable[[pa.Table, Territory], tuple[list[Resolution], list[str]]]


def _values(table: pa.Table, name: str | None) -> list:
    if name is None or name not in table.column_names:
        return [None] * table.num_rows
    return table[name].to_pylist()


def _by_name(dataset: str) -> Resolver:
    municipality, comarca, _ = REGISTERS[dataset]

    def resolve(table: pa.Table, territory: Territory) -> tuple[list[Resolution], list[str]]:
        names = _values(table, municipality)
        comarques = _values(table, comarca) if comarca else None
        shown = [
            f"{n!r}" + (f" ({c})" if comarques is not None else "")
            for n, c in zip(names, comarques or names, strict=True)
        ]
        return resolve_names(territory, names, comarques), shown

    return resolve


def _by_code(code_column: str, width: int, name_column: str) -> Resolver:
    def resolve(table: pa.Table, territory: Territory) -> tuple[list[Resolution], list[str]]:
        codes, names = _values(table, code_column), _values(table, name_column)
        shown = [f"{c!r} {n}" for c, n in zip(codes, names, strict=True)]
        return resolve_codes(territory, codes, width, names), shown

    return resolve


RESOLVERS: dict[str, Resolver] = {
    **{dataset: _by_name(dataset) for dataset in REGISTERS},
    POPULATION_DATASET: _by_code("codi", 6, "literal"),
    ENERGY_DATASET: _by_code("cdmun", 5, "municipi"),
    MUNICIPALITIES_DATASET: _by_code("codi", 6, "nom"),
}


def territory_resolution(inputs: Mapping[str, pa.Table], municipalities: pa.Table) -> pa.Table:
    """The resolution of every staged Catalunya source onto the municipality dimension.

    Raises
    ------
    NoInputRows
        When no Catalunya source is staged.
    """
    territory = Territory(municipalities)
    rows = []
    for dataset, resolver in sorted(RESOLVERS.items()):
        table = inputs.get(table_of(dataset))
        if table is None or table.num_rows == 0:
            continue
        table = current_snapshot(table)
        resolutions, shown = resolver(table, territory)
        methods = Counter(r.method for r in resolutions if r.resolved)
        failures = [f"{shown[i]}: {r.reason}" for i, r in enumerate(resolutions) if not r.resolved]
        resolved = sum(methods.values())
        rows.append(
            {
                "dataset_id": dataset,
                "rows": table.num_rows,
                "resolved": resolved,
                "unresolved": len(failures),
                "resolution_rate": resolved / table.num_rows,
                **{f"by_{method}": methods.get(method, 0) for method in METHODS},
                "comarca_differs": sum(r.comarca_differs for r in resolutions if r.resolved),
                "name_differs": sum(r.name_differs for r in resolutions if r.resolved),
                "unresolved_examples": "\n".join(failures[:EXAMPLES]) or None,
            }
        )
    if not rows:
        raise NoInputRows("no Catalunya source is staged")
    return pa.Table.from_pylist(rows, schema=TERRITORY_RESOLUTION_SCHEMA)
