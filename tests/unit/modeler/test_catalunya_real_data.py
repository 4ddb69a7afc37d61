"""The Catalunya marts on the real exports (tests/fixtures/catalunya), against answers the tests compute from the
raw CSVs themselves (``catalunya_answers``: csv and Fraction, no modeler code); and, through the handler, the rows
that find no municipality: quarantined with their reasons and announced, never dropped silently."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modeler.catalunya import coverage, population, services, territory
from modeler.catalunya.resolution import territory_resolution
from tests.conftest import load_event
from tests.unit.modeler.catalunya_answers import WOMEN_CSV, municipalities, ranked_comarques, rows
from tests.unit.modeler.catalunya_answers import coverage as expected_coverage
from tests.unit.modeler.staging_builder import socrata_staging, socrata_table_name

QUARANTINE = "quarantine/socrata/amca-cgrp/modeler/fact_catalunya_services/"
RESOLUTION_KEY = "marts/reports/territory_resolution/territory_resolution.parquet"
COVERAGE_KEY = "marts/aggregates/agg_coverage_comarca/agg_coverage_comarca.parquet"


@pytest.fixture(scope="module")
def marts() -> dict[str, pa.Table]:
    dimension = territory.dim_municipality(socrata_staging("9aju-tpwc")).table
    comarques = territory.dim_comarca(dimension)
    register = services.fact_social_service(socrata_staging("ivft-vegh"), dimension).table
    people = population.fact_population(socrata_staging("b4rr-d25b"), dimension).table
    by_municipality = coverage.agg_coverage_municipality(register, people, dimension)
    return {
        "dim_municipality": dimension,
        "by_municipality": by_municipality,
        "by_comarca": coverage.agg_coverage_comarca(by_municipality, comarques),
    }


def test_coverage_by_municipality_equals_the_raw_csv_answer(marts):
    expected, _ = expected_coverage(2020)
    got = {r["municipality_code"]: r for r in marts["by_municipality"].to_pylist()}
    assert set(got) == set(expected) and len(got) == 947
    for code, answer in expected.items():
        row = got[code]
        assert (row["population_year"], row["population"], row["population_65_plus"]) == (
            2020,
            answer.population,
            answer.population_65_plus,
        ), code
        assert (row["services"], row["places"], row["elderly_places"]) == (
            answer.services,
            answer.places,
            answer.elderly_places,
        ), code
        rate = answer.elderly_rate
        assert row["elderly_places_per_1000_65_plus"] == (None if rate is None else float(rate)), code


def test_coverage_by_comarca_equals_the_raw_csv_answer_and_ranks_the_same(marts):
    _, expected = expected_coverage(2020)
    got = {r["comarca_code"]: r for r in marts["by_comarca"].to_pylist()}
    assert set(got) == set(expected) and len(got) == 42
    for code, answer in expected.items():
        row = got[code]
        assert (row["population"], row["population_65_plus"], row["services"], row["places"]) == (
            answer.population,
            answer.population_65_plus,
            answer.services,
            answer.places,
        ), code
        assert row["elderly_places"] == answer.elderly_places, code
        assert row["elderly_places_per_1000_65_plus"] == float(answer.elderly_rate), code
        assert row["places_per_1000"] == float(answer.places_rate), code
    ranked = sorted(got.values(), key=lambda r: (-r["elderly_places_per_1000_65_plus"], r["comarca_name"]))
    assert [(r["comarca_name"], r["elderly_places_per_1000_65_plus"]) for r in ranked] == [
        (name, float(rate)) for name, rate in ranked_comarques()
    ]
    # the answer itself, for the record: the Moianès most, the Selva fewest
    assert (ranked[0]["comarca_name"], round(ranked[0]["elderly_places_per_1000_65_plus"], 2)) == ("Moianès", 156.64)
    assert (ranked[-1]["comarca_name"], round(ranked[-1]["elderly_places_per_1000_65_plus"], 2)) == ("Selva", 39.73)


def test_resolution_is_complete_for_the_register_population_and_electricity(marts):
    inputs = {
        socrata_table_name(d): socrata_staging(d)
        for d in ("ivft-vegh", "b4rr-d25b", "8idm-becu", "9aju-tpwc", "utrz-jf79", "amca-cgrp")
    }
    report = {r["dataset_id"]: r for r in territory_resolution(inputs, marts["dim_municipality"]).to_pylist()}
    for dataset, count in (("ivft-vegh", 6300), ("b4rr-d25b", 1894), ("8idm-becu", 943), ("utrz-jf79", 62)):
        assert (report[dataset]["rows"], report[dataset]["resolved"], report[dataset]["resolution_rate"]) == (
            count,
            count,
            1.0,
        ), dataset
    assert report["ivft-vegh"]["by_former_name"] == 51  # ten renamed municipalities, 51 services
    assert report["ivft-vegh"]["comarca_differs"] == 6  # Torà, filed under the Solsonès
    assert report["b4rr-d25b"]["by_code"] == 1894
    women = report["amca-cgrp"]
    assert (women["rows"], women["resolved"], women["unresolved"]) == (1000, 979, 21)
    assert (
        women["unresolved_examples"].splitlines()[0]
        == "'Gimenells' (Segrià): no municipality of Catalunya has this name"
    )


def test_the_handler_quarantines_the_rows_without_a_municipality_and_says_so(
    modeler_aws, modeler_handler, lambda_context
):
    # GIVEN everything staged, the women's organisations included: 21 of their 1,000 rows name a locality
    modeler_aws.staging.stage_all()
    modeler_aws.staging.stage_catalunya(("amca-cgrp",))
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)

    # THEN those rows sit in quarantine with their reasons, beside a reason document with examples
    quarantined = modeler_aws.mart(QUARANTINE + "rows.parquet")
    raw_names = {r["municipi"] for r in rows(WOMEN_CSV)}
    assert quarantined.num_rows == 21
    assert set(quarantined["municipi"].to_pylist()) <= raw_names
    assert set(quarantined["reason"].to_pylist()) == {"no municipality of Catalunya has this name"}
    document = modeler_aws.json(QUARANTINE + "reason.json")
    assert (document["rows_in"], document["rows_quarantined"]) == (1000, 21)
    assert document["examples"][0] == "'Gimenells' (Segrià): no municipality of Catalunya has this name"
    # AND the run is told, with the build: marts.built names that register's quarantine and only it
    (built,) = modeler_aws.events()
    assert built["event_type"] == "marts.built"
    (told,) = built["quarantined"]
    assert (told["mart"], told["source"], told["dataset"], told["rows_in"], told["rows_quarantined"]) == (
        "fact_catalunya_services",
        "socrata",
        "amca-cgrp",
        1000,
        21,
    )
    assert told["reason"].startswith("21 of 1,000 rows not used by fact_catalunya_services (quarantined), e.g. ")
    assert told["quarantine_key"] == QUARANTINE + "rows.parquet"
    assert document["manifest_key"].startswith("landing/socrata/amca-cgrp/")
    assert document["manifest_key"].endswith(".manifest.json")
    # AND the resolution report lists them; the facts hold the others only
    women = next(r for r in modeler_aws.mart(RESOLUTION_KEY).to_pylist() if r["dataset_id"] == "amca-cgrp")
    assert women["unresolved"] == 21
    fact = modeler_aws.mart("marts/facts/fact_catalunya_services/fact_catalunya_services.parquet").to_pylist()
    assert sum(r["services"] for r in fact if r["dataset_id"] == "amca-cgrp") == 979
    assert sum(r["services"] for r in fact if r["dataset_id"] == "utrz-jf79") == 62  # no comarca column: all placed
    assert {r["comarca_code"] for r in fact if r["dataset_id"] == "utrz-jf79"} <= {
        m.comarca_code for m in municipalities().values()
    }

    # WHEN the same batch comes again THEN nothing is written or announced again
    versions = modeler_aws.versions(QUARANTINE + "rows.parquet")
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    (again,) = modeler_aws.events()
    assert again["quarantined"] == []
    assert modeler_aws.versions(QUARANTINE + "rows.parquet") == versions

    # WHEN the register is corrected (its unplaceable rows removed) THEN the quarantine is emptied, not left stale
    corrected = socrata_staging("amca-cgrp")
    keep = [name not in set(quarantined["municipi"].to_pylist()) for name in corrected["municipi"].to_pylist()]
    modeler_aws.staging.replace("socrata_amca_cgrp", corrected.filter(pa.array(keep)))
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    (cleared,) = modeler_aws.events()
    assert cleared["quarantined"] == []
    assert modeler_aws.json(QUARANTINE + "reason.json")["rows_quarantined"] == 0
    assert modeler_aws.mart(QUARANTINE + "rows.parquet").num_rows == 0


def test_the_published_coverage_answers_the_question(modeler_aws, modeler_handler, lambda_context):
    modeler_aws.staging.stage_all()
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    published = modeler_aws.mart(COVERAGE_KEY).to_pylist()
    ranked = sorted(published, key=lambda r: (-r["elderly_places_per_1000_65_plus"], r["comarca_name"]))
    assert [(r["comarca_name"], r["elderly_places_per_1000_65_plus"]) for r in ranked] == [
        (name, float(rate)) for name, rate in ranked_comarques()
    ]
    lineage = modeler_aws.json("marts/_lineage/marts/agg_coverage_comarca.json")
    assert {i["mart"] for i in lineage["inputs"]} == {"agg_coverage_municipality", "dim_comarca"}
    assert json.dumps(lineage["checks"]).count('"passed": true') == len(lineage["checks"])


def test_the_next_register_snapshot_records_what_opened_and_closed(modeler_aws, modeler_handler, lambda_context):
    # GIVEN the register of 2024-05-15 read on 2026-08-07, modelled
    modeler_aws.staging.stage_all()
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)
    changes_key = "marts/facts/fact_register_changes/fact_register_changes.parquet"
    first = modeler_aws.mart(changes_key).to_pylist()
    assert len(first) == 6300 and {r["change"] for r in first} == {"baseline"}

    # WHEN a month later the register has lost S08443 (la Fatarella's day centre) and gained one service
    later = datetime(2026, 9, 7, 8, 31, tzinfo=UTC)
    register = socrata_staging("ivft-vegh", ingested_at=later)
    kept = register.filter(pc.not_equal(register["registre"], "S08443"))
    added = register.filter(pc.equal(register["registre"], "S08788"))
    added = added.set_column(0, "registre", pa.array(["S99999"]))
    modeler_aws.staging.replace("socrata_ivft_vegh", pa.concat_tables([kept, added]))
    modeler_handler.lambda_handler(load_event("modeler_staged_batch.json"), lambda_context)

    # THEN the history keeps the baseline and adds one closing and one opening, dated that snapshot
    history = modeler_aws.mart(changes_key).to_pylist()
    news = [(r["service_id"], r["change"], r["municipality_code"], r["capacity"]) for r in history
            if r["snapshot_date"] == date(2026, 9, 7)]  # fmt: skip
    assert sorted(news) == [("S08443", "closed", "430568", 5), ("S99999", "opened", "082378", 25)]
    assert len(history) == 6302
    totals = modeler_aws.mart("marts/aggregates/agg_register_changes/agg_register_changes.parquet").to_pylist()
    elderly = next(r for r in totals if (r["snapshot_date"], r["care_area"]) == (date(2026, 9, 7), "elderly"))
    assert (elderly["opened"], elderly["closed"], elderly["places_opened"], elderly["places_closed"]) == (1, 1, 25, 5)
