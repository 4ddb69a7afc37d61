"""DataUSA population responses, in both shapes, to the ``population`` staging table.

- tesseract ``data.jsonrecords``: ``{annotations: {dataset_name}, columns: [...], data: [{"Nation ID", "Nation",
  "Year", "Population"}]}`` (Population a float);
- legacy ``api/data``: ``{data: [{"ID Nation", "Nation", "ID Year", "Year", "Population", "Slug Nation"}],
  source: [{annotations: {dataset_name}}]}``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from transformer.domain import (
    Check,
    Lineage,
    Parsed,
    PayloadRejected,
    add_duplicate_reasons,
    blank_to_null,
    build_table,
    constant,
    evaluate,
    parse_numbers,
    parse_years,
    said,
    split_rows,
    trim,
)
from transformer.readers import load_json_document
from transformer.schemas import POPULATION

RAW_SCHEMA = pa.schema([(c, pa.string()) for c in ("year", "geography_id", "geography", "population")])


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def _shape(document: Any, name: str, part_key: str) -> tuple[str, list[Any], str | None]:
    """(shape, rows, vintage) of a response."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise PayloadRejected(
            f"{name} is not a DataUSA response (no data list; got {keys})", check="schema.datausa", part_key=part_key
        )
    if isinstance(document.get("source"), list):
        sources = [s for s in document["source"] if isinstance(s, dict)]
        vintage = (sources[0].get("annotations") or {}).get("dataset_name") if sources else None
        return "legacy", document["data"], vintage
    annotations = document.get("annotations")
    vintage = annotations.get("dataset_name") if isinstance(annotations, dict) else None
    return "tesseract", document["data"], vintage


def _geography_keys(rows: list[dict[str, Any]], shape: str) -> tuple[str, str]:
    """The id and name fields of the drilldown geography (Nation, State, ...)."""
    keys = rows[0].keys() if rows else ()
    for key in keys:
        if shape == "tesseract" and key.endswith(" ID") and key != "Year ID":
            return key, key[: -len(" ID")]
        if shape == "legacy" and key.startswith("ID ") and key != "ID Year":
            return key, key[len("ID ") :]
    return ("Nation ID", "Nation") if shape == "tesseract" else ("ID Nation", "Nation")


def parse_population(payload: bytes, lineage: Lineage, name: str, part_key: str) -> Parsed:
    """A DataUSA population response to ``population`` rows.

    Raises
    ------
    PayloadRejected
        Not JSON (truncated), HTML, neither known shape, no vintage (dataset_name), or a field missing from every
        row (a changed schema).
    """
    document = load_json_document(payload, name, part_key)
    shape, data, vintage = _shape(document, name, part_key)
    if not vintage:
        raise PayloadRejected(
            f"{name} names no dataset (annotations.dataset_name), so the vintage is unknown",
            check="schema.datausa",
            part_key=part_key,
        )
    rows = [r if isinstance(r, dict) else {} for r in data]
    id_key, name_key = _geography_keys(rows, shape)
    year_key = "Year"
    for key in (id_key, year_key, "Population"):
        if rows and not any(key in r for r in rows):
            raise PayloadRejected(
                f"changed schema in {name}: field {key!r} is missing from every row ({shape} shape)",
                check="schema.datausa",
                part_key=part_key,
            )
    raw = pa.table(
        {
            "year": pa.array([_text(r.get(year_key)) for r in rows], pa.string()),
            "geography_id": pa.array([_text(r.get(id_key)) for r in rows], pa.string()),
            "geography": pa.array([_text(r.get(name_key)) for r in rows], pa.string()),
            "population": pa.array([_text(r.get("Population")) for r in rows], pa.string()),
        },
        schema=RAW_SCHEMA,
    )
    year_text = blank_to_null(trim(raw.column("year")))
    geography_id = blank_to_null(trim(raw.column("geography_id")))
    population_text = blank_to_null(trim(raw.column("population")))
    years, bad_year = parse_years(year_text)
    population, not_numeric = parse_numbers(population_text)
    whole = pc.fill_null(pc.equal(population, pc.floor(population)), True)
    checks = [
        Check(pa.array([not isinstance(r, dict) for r in data], pa.bool_()), "row is not a JSON object"),
        Check(pc.is_null(year_text), "year is missing"),
        Check(bad_year, said("year ", year_text, " is not a 4-digit year")),
        Check(pc.is_null(geography_id), "geography id is missing"),
        Check(pc.is_null(population_text), "population is missing"),
        Check(not_numeric, said("population ", population_text, " is not numeric")),
        Check(
            pc.or_(pc.invert(whole), pc.fill_null(pc.less(population, 0), False)),
            said("population ", population_text, " is not a whole, non-negative number"),
        ),
    ]
    n = raw.num_rows
    reason = evaluate(checks, n)
    usable = pc.and_(whole, pc.fill_null(pc.greater_equal(population, 0), False))
    typed = build_table(
        POPULATION,
        {
            "year": years,
            "geography_id": geography_id,
            "geography": blank_to_null(trim(raw.column("geography"))),
            "population": pc.cast(pc.if_else(usable, population, None), pa.int64()),
            "vintage": constant(vintage, n, pa.string()),
            "source_shape": constant(shape, n, pa.string()),
        },
        lineage,
    )
    reason = add_duplicate_reasons(reason, typed, POPULATION.natural_key)
    valid, rejected = split_rows(typed, raw, reason, lineage.source)
    return Parsed(valid=valid, rejected=rejected, rows_in=n)
