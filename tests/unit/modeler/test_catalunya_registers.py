"""The registers of services (women's, LGBTI, social services) counted on the territory dimension, year by year."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from modeler.build import landing_manifest, quarantine_document
from modeler.catalunya import services, territory
from modeler.spec import Rejected
from tests.unit.modeler.staging_builder import socrata_staging

T2026 = datetime(2026, 8, 7, tzinfo=UTC)
T2027 = datetime(2027, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dimension() -> pa.Table:
    return territory.dim_municipality(socrata_staging("9aju-tpwc")).table


def siad(names: list[tuple[str, str]], ingested: datetime) -> pa.Table:
    n = len(names)
    return pa.table(
        {
            "poblaci": [m for m, _ in names],
            "comarca": [c for _, c in names],
            "_ingested_at": pa.array([ingested] * n, pa.timestamp("us", "UTC")),
        }
    )


def test_registers_count_services_per_municipality_code_and_keep_each_years_snapshot(dimension):
    first = {"socrata_9uvn_hv6j": siad([("Sitges", "Garraf"), ("Sitges", "Garraf"), ("Vic", "Osona")], T2026)}
    built = services.fact_catalunya_services(first, dimension, None)
    rows = sorted(built.table.to_pylist(), key=lambda r: r["municipality_code"])
    assert rows == [
        {"dataset_id": "9uvn-hv6j", "municipality_code": "082704", "comarca_code": "17", "snapshot_year": 2026,
         "services": 2, "capacity": None},  # the register records no capacity: null, not 0
        {"dataset_id": "9uvn-hv6j", "municipality_code": "082981", "comarca_code": "24", "snapshot_year": 2026,
         "services": 1, "capacity": None},
    ]  # fmt: skip
    # a 2027 snapshot adds its year and keeps 2026's; a second 2027 snapshot replaces 2027's rows
    later = {"socrata_9uvn_hv6j": siad([("Vic", "Osona")], T2027)}
    fact_2027 = services.fact_catalunya_services(later, dimension, built.table).table
    assert sorted((r["snapshot_year"], r["municipality_code"]) for r in fact_2027.to_pylist()) == [
        (2026, "082704"),
        (2026, "082981"),
        (2027, "082981"),
    ]
    assert services.fact_catalunya_services(later, dimension, fact_2027).table.num_rows == 3
    comarques = services.agg_catalunya_comarca_yearly(built.table).to_pylist()
    assert sorted((r["comarca_code"], r["services"], r["municipalities"]) for r in comarques) == [
        ("17", 2, 1),
        ("24", 1, 1),
    ]


def test_the_social_services_register_brings_its_capacity(dimension):
    register = {"socrata_ivft_vegh": socrata_staging("ivft-vegh")}
    built = services.fact_catalunya_services(register, dimension, None)
    assert sum(r["services"] for r in built.table.to_pylist()) == 6300
    assert built.table["capacity"].null_count == 0
    assert built.rejected == ()  # its rejects are fact_social_service's to quarantine, not a second time here


def test_a_version_published_before_the_dimension_is_carried_forward_by_its_names(dimension):
    # GIVEN the fact as published before the territory dimension: keyed by normalised comarca and municipality names
    old = pa.table(
        {
            "dataset_id": ["9uvn-hv6j", "9uvn-hv6j", "9uvn-hv6j"],
            "comarca_key": ["garraf", "barcelones", "baix ebre"],
            "municipality_key": ["sitges", "l hospitalet de llobregat", "vinallop"],
            "snapshot_year": pa.array([2025, 2025, 2025], pa.int32()),
            "services": pa.array([2, 3, 1], pa.int64()),
            "capacity": pa.array([None, None, None], pa.float64()),
        }
    )
    # WHEN the 2026 snapshot is built on top of it
    current = {"socrata_9uvn_hv6j": siad([("Vic", "Osona")], T2026)}
    built = services.fact_catalunya_services(current, dimension, old)

    # THEN 2025 is kept, on codes; the row whose name is no municipality is quarantined with why, not dropped
    kept = sorted((r["snapshot_year"], r["municipality_code"], r["services"]) for r in built.table.to_pylist())
    assert kept == [(2025, "081017", 3), (2025, "082704", 2), (2026, "082981", 1)]
    (rejected,) = built.rejected
    assert rejected.rows.select(["municipality_key", "reason"]).to_pylist() == [
        {"municipality_key": "vinallop", "reason": "published 2025 row: no municipality of Catalunya has this name"}
    ]


def test_the_lgbti_register_resolves_without_a_comarca(dimension):
    lgbti = {"socrata_utrz_jf79": socrata_staging("utrz-jf79")}
    built = services.fact_catalunya_services(lgbti, dimension, None)
    assert sum(r["services"] for r in built.table.to_pylist()) == 62
    assert built.rejected[0].rows.num_rows == 0
    aran = [r for r in built.table.to_pylist() if r["municipality_code"] == "252430"]  # "Viella" in the register
    assert aran and aran[0]["comarca_code"] == "39"


def test_a_quarantine_document_counts_each_reason_and_gives_examples():
    rows = pa.table(
        {
            "municipi": ["Bellaterra", "Sucs", "Bellaterra"],
            "reason": ["no municipality of Catalunya has this name"] * 2 + ["another reason"],
            "example": ["'Bellaterra' (Vallès Occidental)", "'Sucs' (Segrià)", "'Bellaterra' (Vallès Occidental)"],
            "_source": ["landing/socrata/amca-cgrp/ingest_date=2026-08-07/20260807T083000Z-abc/part-00000.json"] * 3,
        }
    )
    document = quarantine_document("fact_catalunya_services", Rejected("socrata", "amca-cgrp", rows, 1000), "r", "t")
    assert document["reasons"] == {"no municipality of Catalunya has this name": 2, "another reason": 1}
    assert document["summary"].startswith(
        "3 of 1,000 rows not used by fact_catalunya_services (quarantined), e.g. 'Bellaterra' (Vallès Occidental): "
        "no municipality of Catalunya has this name"
    )
    assert landing_manifest(rows) == (
        "landing/socrata/amca-cgrp/ingest_date=2026-08-07/20260807T083000Z-abc.manifest.json"
    )
