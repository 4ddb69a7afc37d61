"""Social services: the register of social entities, services and establishments (``ivft-vegh``), one row per
service on the territory dimension; its service types grouped into care areas; its history between snapshots; and
the women's and LGBTI registers (``9uvn-hv6j``, ``utrz-jf79``, ``amca-cgrp``) counted on the same dimension.

Rules (docs/catalunya.md says them for users):

* A service is a register entry (``registre``, e.g. ``S08443``). Its places are ``capacitat`` (0 for services
  that have no places, such as home help). Its ownership is the register's ``qualificacio``: public initiative,
  private non-profit (social initiative) or private for-profit (mercantile initiative); the literal ``null`` some
  rows carry is unknown.
* Care areas group the ~65 service types by whom they serve (``CARE_AREA_RULES``, first match wins): a type the
  rules do not know lands in ``other`` and stays visible in ``dim_service_type``.
* The municipality comes from the register's ``municipi`` (its own spelling), its ``comarca`` deciding between
  namesakes (``modeler.catalunya.territory``). A row that does not resolve, a row without a register id, and every
  row of a register id that appears twice are rejected with the reason, never counted.
* A snapshot's date is the day the register was read (its newest ``_ingested_at``, UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from modeler.catalunya.territory import (
    SOURCE,
    Resolution,
    Territory,
    current_snapshot,
    newest_ingestion,
    rejected_of,
    resolve_names,
)
from modeler.spec import Built, NoInputRows, Rejected

REGISTER_DATASET = "ivft-vegh"
REGISTER_TABLE = "socrata_ivft_vegh"

# (care area, label, words of the service type that place it there), tried in order: the first match wins. Words are
# matched in the type's name key (lower case, no accents), so "gent gran" matches "Servei de centre de dia per a gent
# gran". Disability comes before childhood because early-care and orientation services name disability; social
# exclusion before basic services because a basic service for food distribution is exclusion relief.
CARE_AREA_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("elderly", "Elderly people", ("gent gran", "persones grans")),
    (
        "disability",
        "People with disabilities",
        ("discapacitat", "disminu", "transport adaptat", "persones sordes", "autonomia personal", "valoracio"),
    ),
    # the pre-work service ("servei prelaboral") is the register's one for people with a mental illness
    ("mental_health", "Mental health", ("malaltia mental", "club social", "prelaboral")),
    ("addictions", "Addictions and HIV", ("drogodependenc", "addiccion", "vih")),
    (
        "childhood_family",
        "Childhood and families",
        ("atencio precoc", "adopcio", "maternoinfantil", "families", "acolliment temporal en families"),
    ),
    (
        "social_exclusion",
        "Social exclusion and emergency",
        ("exclusio social", "menjador social", "distribucio d aliments", "acolliment residencial d urgencia"),
    ),
    (
        "basic_social_services",
        "Basic and general social services",
        (
            "servei basic d atencio social",
            "ajuda a domicili",
            "serveis socials basics",
            "serveis socials especialitzats",
            "tecnologies de suport",
            "cuidadors",
            "dependencia",
            "orientacio",
            "assessorament",
        ),
    ),
)
OTHER_AREA = ("other", "Other (experimental and other services)")
CARE_AREAS = (*(area for area, _, _ in CARE_AREA_RULES), OTHER_AREA[0])
ELDERLY = "elderly"

OWNERSHIP = {
    "entitat d iniciativa publica": "public",
    "entitat privada d iniciativa social": "private_nonprofit",
    "entitat privada d iniciativa mercantil": "private_for_profit",
}
OWNERSHIPS = ("public", "private_nonprofit", "private_for_profit", "unknown")


def _key(text: str | None) -> str:
    from modeler.catalunya.territory import name_key

    return name_key(text) or ""


def care_area(service_type: str | None) -> tuple[str, str]:
    """(area, label) of a register service type, by ``CARE_AREA_RULES``; ``other`` when no rule matches."""
    key = f" {_key(service_type)} "
    for area, label, words in CARE_AREA_RULES:
        if any(f" {word}" in key for word in words):
            return area, label
    return OTHER_AREA


def ownership(qualification: str | None) -> str:
    """``Entitat d'iniciativa pública`` -> ``public``; the text ``null``, an empty or unknown value -> ``unknown``."""
    return OWNERSHIP.get(_key(qualification), "unknown")


# ----------------------------------------------------------------------------------------------------------------
# The register, resolved
# ----------------------------------------------------------------------------------------------------------------

FACT_SOCIAL_SERVICE_SCHEMA = pa.schema(
    [
        ("service_id", pa.string()),  # the register id, e.g. S08443
        ("service_name", pa.string()),
        ("service_type", pa.string()),
        ("care_area", pa.string()),
        ("municipality_code", pa.string()),
        ("comarca_code", pa.string()),
        ("district", pa.string()),
        ("postal_code", pa.string()),
        ("capacity", pa.int64()),  # places; 0 for a service without places
        ("ownership", pa.string()),
        ("is_public", pa.bool_()),  # null when the ownership is unknown
        ("holder", pa.string()),
        ("registration_date", pa.date32()),
        ("resolved_by", pa.string()),
        ("snapshot_date", pa.date32()),
    ]
)


def _texts(table: pa.Table, name: str) -> list[str | None]:
    if name not in table.column_names:
        return [None] * table.num_rows
    return [None if v is None or not str(v).strip() else " ".join(str(v).split()) for v in table[name].to_pylist()]


def _column(table: pa.Table, name: str) -> list[Any]:
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


def _capacity(value: Any) -> int | None:
    if isinstance(value, int | float) and float(value).is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if hasattr(value, "date"):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def register_rows(
    register: pa.Table, territory: Territory | None
) -> tuple[list[dict[str, Any]], Rejected, list[dict[str, Any]]]:
    """The register's current snapshot: the services placed on the territory, the rejected rows with their
    reasons, and every service with a unique register id (placed or not: the history counts them all).

    Without a territory, no row is placed (every service's municipality is null) and none is rejected for it.

    Raises
    ------
    NoInputRows
        When the register is empty.
    """
    table = current_snapshot(register)
    if table.num_rows == 0:
        raise NoInputRows("the social-services register (ivft-vegh) is empty")
    taken = newest_ingestion(table).date()
    n = table.num_rows
    ids, names, municipalities = _texts(table, "registre"), _texts(table, "nom"), _texts(table, "municipi")
    comarques = _texts(table, "comarca")
    # the type as published (ends trimmed only): it is dim_service_type's key, joined back to the source
    types = [None if v is None or not v.strip() else v.strip() for v in _column(table, "tipologia")]
    capacities = table["capacitat"].to_pylist() if "capacitat" in table.column_names else [None] * n
    placed = territory is not None
    resolutions = resolve_names(territory, municipalities, comarques) if placed else [Resolution(None, None)] * n
    counts: dict[str | None, int] = {}
    for service_id in ids:
        counts[service_id] = counts.get(service_id, 0) + 1
    problems: dict[int, str] = {}
    for i, service_id in enumerate(ids):
        if service_id is None:
            problems[i] = "no register id"
        elif counts[service_id] > 1:
            problems[i] = f"register id {service_id} appears {counts[service_id]} times in the snapshot"
        elif capacities[i] is not None and _capacity(capacities[i]) is None:
            problems[i] = f"capacity {capacities[i]!r} is not a whole number of places"
    examples = [f"{ids[i]} {municipalities[i]!r} ({comarques[i]})" for i in range(n)]
    keep, rejected = rejected_of(REGISTER_DATASET, table, resolutions, examples, problems)
    kept = set(keep) if placed else set()
    districts, postal = _texts(table, "districte"), _texts(table, "cp")
    holders, qualifications = _texts(table, "entitat_titular"), _texts(table, "qualificacio")
    registered = table["inscripcio"].to_pylist() if "inscripcio" in table.column_names else [None] * n
    services = []
    for i in range(n):
        if ids[i] is None or counts[ids[i]] > 1:
            continue
        owner = ownership(qualifications[i])
        code = resolutions[i].code
        services.append(
            {
                "service_id": ids[i],
                "service_name": names[i],
                "service_type": types[i],
                "care_area": care_area(types[i])[0],
                "municipality_code": code,
                "comarca_code": territory.comarca_of(code) if territory is not None and code else None,
                "district": districts[i],
                "postal_code": postal[i],
                "capacity": _capacity(capacities[i]),
                "ownership": owner,
                "is_public": None if owner == "unknown" else owner == "public",
                "holder": holders[i],
                "registration_date": _date(registered[i]),
                "resolved_by": resolutions[i].method,
                "snapshot_date": taken,
                "_placed": i in kept,
            }
        )
    placed_rows = [{k: v for k, v in r.items() if k != "_placed"} for r in services if r["_placed"]]
    every = [{k: v for k, v in r.items() if k != "_placed"} for r in services]
    return placed_rows, rejected, every


def fact_social_service(register: pa.Table, municipalities: pa.Table) -> Built:
    """One row per service of the register's current snapshot, on the territory dimension.

    Raises
    ------
    NoInputRows
        When the register is empty.
    """
    rows, rejected, _ = register_rows(register, Territory(municipalities))
    table = pa.Table.from_pylist(rows, schema=FACT_SOCIAL_SERVICE_SCHEMA).sort_by("service_id")
    return Built(table, (rejected,))


DIM_SERVICE_TYPE_SCHEMA = pa.schema(
    [
        ("service_type", pa.string()),
        ("care_area", pa.string()),
        ("care_area_label", pa.string()),
        ("services", pa.int64()),  # in the current snapshot
        ("places", pa.int64()),
        ("has_places", pa.bool_()),  # at least one service of the type counts places
    ]
)


def dim_service_type(services: pa.Table) -> pa.Table:
    """Every service type of the register, its care area, and how many services and places it has now.

    Raises
    ------
    NoInputRows
        When there is no service.
    """
    if services.num_rows == 0:
        raise NoInputRows("fact_social_service is empty")
    valid = services.filter(pc.is_valid(services["service_type"]))
    grouped = valid.group_by(["service_type"], use_threads=False).aggregate([([], "count_all"), ("capacity", "sum")])
    rows = []
    for row in grouped.to_pylist():
        area, label = care_area(row["service_type"])
        places = row["capacity_sum"] or 0
        rows.append(
            {
                "service_type": row["service_type"],
                "care_area": area,
                "care_area_label": label,
                "services": row["count_all"],
                "places": places,
                "has_places": places > 0,
            }
        )
    return pa.Table.from_pylist(rows, schema=DIM_SERVICE_TYPE_SCHEMA).sort_by("service_type")


# ----------------------------------------------------------------------------------------------------------------
# History: services opened and closed between one snapshot and the next
# ----------------------------------------------------------------------------------------------------------------

BASELINE, OPENED, CLOSED = "baseline", "opened", "closed"
CHANGES = (BASELINE, OPENED, CLOSED)

FACT_REGISTER_CHANGES_SCHEMA = pa.schema(
    [
        ("service_id", pa.string()),
        ("snapshot_date", pa.date32()),  # the snapshot in which the change was seen
        ("change", pa.string()),  # baseline (in the first snapshot), opened, closed
        ("previous_snapshot_date", pa.date32()),  # the last earlier snapshot that changed the register (null: none)
        ("service_name", pa.string()),
        ("service_type", pa.string()),
        ("care_area", pa.string()),
        ("municipality_code", pa.string()),  # where it is (opened) or was (closed); null if unresolved
        ("capacity", pa.int64()),
        ("registration_date", pa.date32()),
    ]
)

CHANGE_FIELDS = ("service_name", "service_type", "care_area", "municipality_code", "capacity", "registration_date")


def members_before(events: list[dict[str, Any]], before: date) -> dict[str, dict[str, Any]]:
    """The services in the register just before ``before``: each one's latest event earlier than that date is a
    baseline or an opening (not a closing)."""
    latest: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e["snapshot_date"]):
        if event["snapshot_date"] < before:
            latest[event["service_id"]] = event
    return {sid: e for sid, e in latest.items() if e["change"] != CLOSED}


def fact_register_changes(register: pa.Table, municipalities: pa.Table | None, previous: pa.Table | None) -> pa.Table:
    """The register's changes, accumulated: every service of the first snapshot (``baseline``), then at each new
    snapshot the services that appeared (``opened``) or disappeared (``closed``) since the last one.

    Incremental: ``previous`` is the published mart. Events dated the current snapshot's day are recomputed (a
    second read the same day replaces the first); earlier ones are kept as they are.

    Raises
    ------
    NoInputRows
        When the register is empty.
    """
    territory = Territory(municipalities) if municipalities is not None and municipalities.num_rows else None
    _, _, services = register_rows(register, territory)
    taken = newest_ingestion(current_snapshot(register)).date()
    current = {r["service_id"]: r for r in services}
    kept = [] if previous is None else [e for e in previous.to_pylist() if e["snapshot_date"] < taken]
    before = members_before(kept, taken)
    prior_dates = [e["snapshot_date"] for e in kept]
    last = max(prior_dates) if prior_dates else None
    events = []
    if last is None:
        events += [_event(r, taken, BASELINE, None) for r in current.values()]
    else:
        events += [_event(r, taken, OPENED, last) for sid, r in current.items() if sid not in before]
        events += [_event(e, taken, CLOSED, last) for sid, e in before.items() if sid not in current]
    table = pa.Table.from_pylist([*kept, *events], schema=FACT_REGISTER_CHANGES_SCHEMA)
    return table.sort_by([("snapshot_date", "ascending"), ("service_id", "ascending")])


def _event(row: Mapping[str, Any], taken: date, change: str, last: date | None) -> dict[str, Any]:
    return {
        "service_id": row["service_id"],
        "snapshot_date": taken,
        "change": change,
        "previous_snapshot_date": last,
        **{name: row.get(name) for name in CHANGE_FIELDS},
    }


AGG_REGISTER_CHANGES_SCHEMA = pa.schema(
    [
        ("snapshot_date", pa.date32()),
        ("care_area", pa.string()),
        ("previous_snapshot_date", pa.date32()),
        ("baseline", pa.int64()),
        ("opened", pa.int64()),
        ("closed", pa.int64()),
        ("places_opened", pa.int64()),
        ("places_closed", pa.int64()),
    ]
)


def agg_register_changes(changes: pa.Table) -> pa.Table:
    """Per snapshot and care area: services in the first snapshot, services opened and closed, and their places.

    Raises
    ------
    NoInputRows
        When there is no change at all.
    """
    if changes.num_rows == 0:
        raise NoInputRows("fact_register_changes is empty")
    totals: dict[tuple[date, str], dict[str, Any]] = {}
    for row in changes.to_pylist():
        key = (row["snapshot_date"], row["care_area"] or OTHER_AREA[0])
        entry = totals.setdefault(
            key,
            {
                "snapshot_date": key[0],
                "care_area": key[1],
                "previous_snapshot_date": row["previous_snapshot_date"],
                BASELINE: 0,
                OPENED: 0,
                CLOSED: 0,
                "places_opened": 0,
                "places_closed": 0,
            },
        )
        entry[row["change"]] += 1
        if row["change"] in (OPENED, CLOSED):
            entry[f"places_{row['change']}"] += row["capacity"] or 0
    table = pa.Table.from_pylist(list(totals.values()), schema=AGG_REGISTER_CHANGES_SCHEMA)
    return table.sort_by([("snapshot_date", "ascending"), ("care_area", "ascending")])


# ----------------------------------------------------------------------------------------------------------------
# The registers of services on the territory (the women's and LGBTI registers, and the social-services register)
# ----------------------------------------------------------------------------------------------------------------

# dataset -> (municipality column, comarca column or None, capacity column or None)
REGISTERS: dict[str, tuple[str, str | None, str | None]] = {
    "9uvn-hv6j": ("poblaci", "comarca", None),
    "utrz-jf79": ("municipi", None, None),  # no comarca column: resolved by municipality alone
    "amca-cgrp": ("municipi", "comarca", None),
    REGISTER_DATASET: ("municipi", "comarca", "capacitat"),
}
# The social-services register's rejected rows are quarantined by fact_social_service, not a second time here.
QUARANTINED_ELSEWHERE = frozenset({REGISTER_DATASET})


def table_of(dataset: str) -> str:
    return "socrata_" + dataset.replace("-", "_")


FACT_CATALUNYA_SCHEMA = pa.schema(
    [
        ("dataset_id", pa.string()),
        ("municipality_code", pa.string()),
        ("comarca_code", pa.string()),
        ("snapshot_year", pa.int32()),
        ("services", pa.int64()),
        ("capacity", pa.float64()),  # null for a register that records no capacity
    ]
)


def _register_entries(dataset: str, table: pa.Table, territory: Territory) -> tuple[list[dict[str, Any]], Rejected]:
    municipality_column, comarca_column, capacity_column = REGISTERS[dataset]
    table = current_snapshot(table)
    year = newest_ingestion(table).year
    names = _texts(table, municipality_column)
    comarques = _texts(table, comarca_column) if comarca_column else None
    resolutions = resolve_names(territory, names, comarques)
    examples = [
        f"{names[i]!r}" + (f" ({comarques[i]})" if comarques is not None else "") for i in range(table.num_rows)
    ]
    keep, rejected = rejected_of(dataset, table, resolutions, examples)
    capacity = table[capacity_column].to_pylist() if capacity_column in table.column_names else None
    entries: dict[str, dict[str, Any]] = {}
    for i in keep:
        code = resolutions[i].code
        entry = entries.setdefault(
            code,  # type: ignore[arg-type]
            {
                "dataset_id": dataset,
                "municipality_code": code,
                "comarca_code": territory.comarca_of(code),  # type: ignore[arg-type]
                "snapshot_year": year,
                "services": 0,
                "capacity": None if capacity is None else 0.0,
            },
        )
        entry["services"] += 1
        if capacity is not None and capacity[i] is not None:
            entry["capacity"] += float(capacity[i])
    return list(entries.values()), rejected


def fact_catalunya_services(
    registers: Mapping[str, pa.Table], municipalities: pa.Table, previous: pa.Table | None
) -> Built:
    """Services (register entries) and their capacity per register, municipality and snapshot year.

    Incremental: the years of ``previous`` the current snapshots do not cover are kept, so each year's snapshot
    survives the next year's; a snapshot of the same year replaces its rows. A published version from before the
    territory dimension (keyed by normalised names, ``comarca_key``/``municipality_key``) is carried forward by
    resolving those names; a row that does not resolve is rejected with its reason, not dropped.

    Raises
    ------
    NoInputRows
        When no register is staged.
    """
    territory = Territory(municipalities)
    rows: list[dict[str, Any]] = []
    rejected: dict[str, Rejected] = {}
    present = {
        dataset: registers[table_of(dataset)]
        for dataset in REGISTERS
        if table_of(dataset) in registers and registers[table_of(dataset)].num_rows
    }
    if not present:
        raise NoInputRows("no register of services is staged")
    for dataset, table in present.items():
        entries, refused = _register_entries(dataset, table, territory)
        rows += entries
        if dataset not in QUARANTINED_ELSEWHERE:
            rejected[dataset] = refused
    current = pa.Table.from_pylist(rows, schema=FACT_CATALUNYA_SCHEMA)
    if previous is not None and previous.num_rows:
        replaced = {(r["dataset_id"], r["snapshot_year"]) for r in rows}
        carried, unresolved = _carried_forward(previous, territory, replaced)
        current = pa.concat_tables([pa.Table.from_pylist(carried, schema=FACT_CATALUNYA_SCHEMA), current])
        for dataset, old in unresolved.items():
            earlier = rejected.get(dataset)
            if earlier is None:
                rejected[dataset] = Rejected(SOURCE, dataset, old, old.num_rows)
            else:
                both = pa.concat_tables([earlier.rows, old], promote_options="permissive")
                rejected[dataset] = Rejected(SOURCE, dataset, both, earlier.rows_in + old.num_rows)
    return Built(current, tuple(rejected[d] for d in sorted(rejected)))


def _carried_forward(
    previous: pa.Table, territory: Territory, replaced: set[tuple[str, int]]
) -> tuple[list[dict[str, Any]], dict[str, pa.Table]]:
    """The published rows of the years the current snapshots do not replace, on the territory dimension.

    A version from before the dimension (keyed by normalised names, ``comarca_key``/``municipality_key``) is
    resolved name by name and summed per code; its rows that do not resolve are returned per register, with their
    reason, to be quarantined.
    """
    rows = [r for r in previous.to_pylist() if (r["dataset_id"], r["snapshot_year"]) not in replaced]
    if "municipality_code" in previous.column_names:
        return [{name: r.get(name) for name in FACT_CATALUNYA_SCHEMA.names} for r in rows], {}
    merged: dict[tuple[str, str, int], dict[str, Any]] = {}
    unresolved: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        resolution = territory.resolve_name(row.get("municipality_key"), row.get("comarca_key"))
        if resolution.code is None:
            reason = f"published {row['snapshot_year']} row: {resolution.reason}"
            example = f"{row.get('municipality_key')!r} ({row.get('comarca_key')})"
            unresolved.setdefault(row["dataset_id"], []).append({**row, "reason": reason, "example": example})
            continue
        key = (row["dataset_id"], resolution.code, row["snapshot_year"])
        entry = merged.setdefault(
            key,
            {
                "dataset_id": row["dataset_id"],
                "municipality_code": resolution.code,
                "comarca_code": territory.comarca_of(resolution.code),
                "snapshot_year": row["snapshot_year"],
                "services": 0,
                "capacity": None,
            },
        )
        entry["services"] += row.get("services") or 0
        if row.get("capacity") is not None:
            entry["capacity"] = (entry["capacity"] or 0.0) + row["capacity"]
    return list(merged.values()), {d: pa.Table.from_pylist(r) for d, r in unresolved.items()}


AGG_COMARCA_SCHEMA = pa.schema(
    [
        ("dataset_id", pa.string()),
        ("comarca_code", pa.string()),
        ("snapshot_year", pa.int32()),
        ("services", pa.int64()),
        ("municipalities", pa.int64()),
        ("capacity", pa.float64()),
    ]
)


def agg_catalunya_comarca_yearly(fact: pa.Table) -> pa.Table:
    """Services, municipalities with a service, and capacity per register, comarca and snapshot year.

    Raises
    ------
    NoInputRows
        When the fact is empty.
    """
    if fact.num_rows == 0:
        raise NoInputRows("fact_catalunya_services is empty")
    grouped = fact.group_by(["dataset_id", "comarca_code", "snapshot_year"], use_threads=False).aggregate(
        [("services", "sum"), ("municipality_code", "count_distinct"), ("capacity", "sum")]
    )
    result = pa.table(
        {
            "dataset_id": grouped["dataset_id"],
            "comarca_code": grouped["comarca_code"],
            "snapshot_year": grouped["snapshot_year"],
            "services": grouped["services_sum"],
            "municipalities": grouped["municipality_code_count_distinct"],
            "capacity": grouped["capacity_sum"],
        }
    )
    return result.cast(AGG_COMARCA_SCHEMA)
