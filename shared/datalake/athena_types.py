"""The one map from Arrow types to the Hive types Athena reads Parquet columns as (Glue table columns).

The transformer registers the Glue tables whose columns are only known at run time (Socrata datasets) with it, the
modeler declares every mart's columns with it, and stacks/catalog.yaml's tables are checked against (or generated from)
it, so a staging table or mart is described the same way everywhere.

Only the Arrow types the pipeline writes are mapped; any other type raises rather than guessing a Hive type that
Athena might read as the wrong values.
"""

from __future__ import annotations

import pyarrow as pa

_SIMPLE: dict[pa.DataType, str] = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


class NoAthenaType(TypeError):
    """An Arrow type the pipeline does not write, so no Athena type is declared for it."""


def athena_type(arrow_type: pa.DataType) -> str:
    """The Hive/Athena type of a Parquet column written from this Arrow type.

    Parameters
    ----------
    arrow_type: the column's Arrow type (as in a staging table's or a mart's schema).

    Returns
    -------
    The Glue column type: ``string``, ``int``, ``bigint``, ``double``, ``boolean``, ``date`` or ``timestamp``
    (an Arrow timestamp of any unit and zone: Parquet stores it as an instant, which Athena reads as ``timestamp``).

    Raises
    ------
    NoAthenaType
        For any other Arrow type.
    """
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    try:
        return _SIMPLE[arrow_type]
    except KeyError as exc:
        raise NoAthenaType(f"no Athena type for Arrow type {arrow_type}") from exc


def athena_columns(schema: pa.Schema, exclude: tuple[str, ...] | frozenset[str] = ()) -> list[dict[str, str]]:
    """A schema's fields as Glue columns (``{"Name", "Type"}``), in order, without the ``exclude`` ones (a
    partitioned table's partition columns, which live in its paths).

    Raises
    ------
    NoAthenaType
        When a field's type has no Athena type.
    """
    return [{"Name": f.name, "Type": athena_type(f.type)} for f in schema if f.name not in exclude]
