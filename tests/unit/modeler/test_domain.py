"""The mart functions on tiny tables: each rule of docs/reports.md, one at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from modeler import domain as d

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 2, 1, tzinfo=UTC)


def observations(rows: list[tuple], **extra) -> pa.Table:
    table = pa.table(
        {
            "series_id": [r[0] for r in rows],
            "year": pa.array([r[1] for r in rows], pa.int32()),
            "period": [r[2] for r in rows],
            "value": pa.array([r[3] for r in rows], pa.float64()),
        }
    )
    for name, values in extra.items():
        table = table.append_column(name, pa.array(values))
    return table


def population(rows: list[tuple], vintage: str = "ACS 1-year Estimate", geography: str = "01000US") -> pa.Table:
    return pa.table(
        {
            "year": pa.array([r[0] for r in rows], pa.int32()),
            "geography_id": [geography] * len(rows),
            "geography": ["United States"] * len(rows),
            "population": pa.array([r[1] for r in rows], pa.int64()),
            "vintage": [vintage] * len(rows),
            "_ingested_at": pa.array([T1] * len(rows), pa.timestamp("us", "UTC")),
        }
    )


# -- bls_best_year ------------------------------------------------------------------------------------------------


def test_best_year_sums_q01_to_q04_and_ignores_q05_for_quarterly_series():
    rows = [("A", 2020, p, 1.0) for p in ("Q01", "Q02", "Q03", "Q04")] + [("A", 2020, "Q05", 100.0)]
    rows += [("A", 2021, p, 2.0) for p in ("Q01", "Q02", "Q03")] + [("A", 2021, "Q05", 0.0)]
    assert d.bls_best_year(observations(rows)).to_pylist() == [{"series_id": "A", "year": 2021, "value": 6.0}]


def test_best_year_uses_q05_for_annual_only_series():
    rows = [("B", 2019, "Q05", 3.5), ("B", 2020, "Q05", 7.25), ("B", 2021, "Q05", -1.0)]
    assert d.bls_best_year(observations(rows)).to_pylist() == [{"series_id": "B", "year": 2020, "value": 7.25}]


def test_best_year_tie_goes_to_the_earliest_year_even_when_floats_disagree():
    # 0.1 + 0.2 != 0.3 in floating point; the sums are exact, so 2019 and 2020 tie and 2019 wins
    rows = [("C", 2020, "Q01", 0.3), ("C", 2019, "Q01", 0.1), ("C", 2019, "Q02", 0.2)]
    assert 0.1 + 0.2 != 0.3
    assert d.bls_best_year(observations(rows)).to_pylist() == [{"series_id": "C", "year": 2019, "value": 0.3}]


def test_best_year_keeps_one_row_per_series_even_without_values():
    rows = [("D", 2020, "Q01", None), ("E", 2020, "Q01", 1.0), ("E", 2020, "Q02", -2.0)]
    assert d.bls_best_year(observations(rows)).to_pylist() == [
        {"series_id": "D", "year": None, "value": None},
        {"series_id": "E", "year": 2020, "value": -1.0},
    ]


def test_best_year_never_sums_a_row_twice_when_two_versions_are_visible():
    # a merge mid-flight: the old and the new part of the same file are both listed for a moment
    rows = [("F", 2020, "Q01", 1.0), ("F", 2020, "Q01", 5.0), ("F", 2021, "Q01", 4.0)]
    ingested = pa.array([T1, T2, T2], pa.timestamp("us", "UTC"))
    assert d.bls_best_year(observations(rows, _ingested_at=ingested)).to_pylist() == [
        {"series_id": "F", "year": 2020, "value": 5.0}
    ]


def test_best_year_of_nothing_is_skipped_not_empty():
    with pytest.raises(d.NoInputRows):
        d.bls_best_year(observations([]))


# -- population ------------------------------------------------------------------------------------------------


def test_population_stats_reports_both_deviations_and_the_years_present():
    pop = population([(2012, 1), (2013, 10), (2014, 20), (2016, 30), (2019, 99)])
    (row,) = d.population_stats(pop, 2013, 2018).to_pylist()
    assert row["years_present"] == 3 and row["years_expected"] == 6
    assert row["years"] == "2013,2014,2016"
    assert row["mean_population"] == 20.0
    assert row["std_population_ddof0"] == pytest.approx((200 / 3) ** 0.5)
    assert row["std_sample_ddof1"] == pytest.approx(10.0)


def test_population_stats_of_a_single_year_has_no_sample_deviation():
    (row,) = d.population_stats(population([(2015, 5)]), 2013, 2018).to_pylist()
    assert row["std_population_ddof0"] == 0.0 and row["std_sample_ddof1"] is None


def test_preferred_population_picks_one_vintage_and_never_mixes():
    one_year = population([(2019, 100), (2021, 102)], "ACS 1-year Estimate")
    five_year = population([(2019, 90), (2020, 91), (2021, 92)], "ACS 5-year Estimate")
    state = population([(2019, 5)], "ACS 1-year Estimate", geography="04000US06")
    chosen = d.preferred_population(pa.concat_tables([five_year, one_year, state]))
    assert sorted(zip(chosen["year"].to_pylist(), chosen["population"].to_pylist(), strict=True)) == [
        (2019, 100),
        (2021, 102),
    ]
    # with only the 5-year vintage staged, it is used
    assert d.preferred_population(five_year).num_rows == 3


def test_preferred_population_newest_ingestion_wins_within_a_vintage():
    old = population([(2019, 1)])
    new = population([(2019, 2)]).set_column(5, "_ingested_at", pa.array([T2], pa.timestamp("us", "UTC")))
    assert d.preferred_population(pa.concat_tables([old, new]))["population"].to_pylist() == [2]


def test_series_population_keeps_years_without_population():
    obs = observations(
        [("S", 2019, "Q01", 1.0), ("S", 2020, "Q01", 2.0), ("S", 2020, "Q02", 9.0), ("X", 2019, "Q01", 5.0)]
    )
    pop = population([(2019, 300)])
    rows = d.series_population(obs, pop, "S", "Q01").to_pylist()
    assert [(r["year"], r["value"], r["population"]) for r in rows] == [(2019, 1.0, 300), (2020, 2.0, None)]


def test_correlation_needs_three_years_and_keeps_undefined_rows():
    yearly = pa.table(
        {
            "series_id": ["up"] * 3 + ["flat"] * 3 + ["short"] * 2,
            "year": pa.array([2013, 2014, 2015] * 2 + [2013, 2014], pa.int32()),
            "annual_value": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 1.0, 2.0],
        }
    )
    pop = population([(2013, 10), (2014, 20), (2015, 30)])
    rows = {r["series_id"]: r for r in d.bls_population_correlation(yearly, pop).to_pylist()}
    assert rows["up"]["pearson_r"] == pytest.approx(1.0) and rows["up"]["n_years"] == 3
    assert rows["flat"]["pearson_r"] is None  # constant: undefined, kept
    assert rows["short"]["pearson_r"] is None and rows["short"]["n_years"] == 2


# -- facts and aggregates -----------------------------------------------------------------------------------------


def test_fact_prefers_the_current_file_then_the_api_then_other_bulk_files():
    obs = observations(
        [
            ("PRS1", 2020, "Q01", 1.0),
            ("PRS1", 2020, "Q01", 2.0),
            ("PRS1", 2020, "Q01", 3.0),
            ("PRS1", 2020, "Q02", 4.0),
        ],
        source_kind=["bulk", "api", "bulk", "api"],
        source_file=["pr.data.1.AllData", "api", "pr.data.0.Current", "api"],
        survey=["pr", None, "pr", None],
        _ingested_at=pa.array([T2, T2, T1, T1], pa.timestamp("us", "UTC")),
    )
    fact = d.fact_bls_observation(obs).to_pylist()
    assert [(r["period"], r["value"], r["source_file"], r["time_key"]) for r in fact] == [
        ("Q01", 3.0, "pr.data.0.Current", "2020-Q01"),
        ("Q02", 4.0, "api", "2020-Q02"),
    ]
    assert fact[1]["survey"] == "pr"  # derived from the series id where the partition has none


def test_yearly_annual_value_is_the_published_average_or_a_complete_year_mean():
    fact = observations(
        [("Q", 2020, p, v) for p, v in (("Q01", 1.0), ("Q02", 2.0), ("Q03", 3.0), ("Q04", 6.0))]
        + [("Q", 2021, "Q01", 5.0)]
        + [("M", 2020, f"M{m:02d}", float(m)) for m in range(1, 13)]
        + [("M", 2020, "M13", 7.0)]
        + [("A", 2020, "Q05", 9.0)]
    )
    rows = {(r["series_id"], r["year"]): r for r in d.agg_bls_series_yearly(fact).to_pylist()}
    assert rows[("Q", 2020)]["annual_value"] == 3.0 and rows[("Q", 2020)]["annual_average"] is None
    assert rows[("Q", 2021)]["annual_value"] is None  # one quarter: no annual value
    assert rows[("M", 2020)]["annual_value"] == 7.0 and rows[("M", 2020)]["observations"] == 12
    assert rows[("A", 2020)]["period_type"] == "annual" and rows[("A", 2020)]["annual_value"] == 9.0


def test_dim_time_covers_every_period_of_every_year():
    fact = observations([("A", 2023, "Q01", 1.0), ("A", 2024, "M02", 1.0)])
    rows = {r["time_key"]: r for r in d.dim_time(fact, None).to_pylist()}
    assert len(rows) == 2 * len(d.ALL_PERIODS)
    assert rows["2024-M02"]["end_date"] == date(2024, 2, 29)
    assert rows["2023-Q04"]["start_date"] == date(2023, 10, 1) and rows["2023-Q04"]["period_type"] == "quarter"
    assert rows["2023-Q05"]["is_annual_average"] and rows["2023-Q05"]["period_type"] == "annual"


def test_dim_series_normalises_seasonal_and_composes_a_title_for_pr_series():
    fact = d.fact_bls_observation(observations([("PRS1", 2020, "Q01", 1.0), ("LNS1", 2020, "M01", 1.0)]))
    series = pa.table(
        {
            "series_id": ["PRS1", "LNS1"],
            "series_title": [None, "Unemployment rate"],
            "seasonal": ["S", "Not Seasonally Adjusted"],
            "sector_name": ["Manufacturing", None],
            "measure_text": ["Hours worked", None],
            "duration_text": ["% change from previous quarter", None],
            "class_text": ["All workers", None],
        }
    )
    rows = {r["series_id"]: r for r in d.dim_series(fact, series).to_pylist()}
    assert rows["PRS1"]["series_title"] == "Manufacturing: Hours worked, % change from previous quarter (All workers)"
    assert rows["PRS1"]["seasonal"] == "S"
    assert rows["LNS1"]["seasonal"] == "U" and rows["LNS1"]["series_title"] == "Unemployment rate"
    assert rows["LNS1"]["survey"] == "ln" and rows["PRS1"]["observations"] == 1


def test_dim_series_takes_codes_from_the_bulk_record_and_the_title_from_the_api_catalog():
    fact = d.fact_bls_observation(observations([("PRS1", 2020, "Q01", 1.0)]))
    series = pa.table(
        {
            "series_id": ["PRS1", "PRS1"],
            "source_kind": ["api", "bulk"],
            "series_title": ["Manufacturing hours worked", None],
            "seasonal": ["Seasonally Adjusted", "S"],
            "sector_code": [None, "3000"],
            "sector_name": [None, "Manufacturing"],
        }
    )
    (row,) = d.dim_series(fact, series).to_pylist()
    assert (row["series_title"], row["sector_code"], row["seasonal"]) == ("Manufacturing hours worked", "3000", "S")


def test_dim_series_falls_back_to_the_catalog_name_and_keeps_series_without_metadata():
    fact = d.fact_bls_observation(observations([("LNS14000000", 2024, "M01", 4.0), ("CES1", 2024, "M01", 1.0)]))
    rows = {r["series_id"]: r for r in d.dim_series(fact, None, {"LNS14000000": "Unemployment rate"}).to_pylist()}
    assert rows["LNS14000000"]["series_title"] == "Unemployment rate"
    assert rows["CES1"]["series_title"] is None and rows["CES1"]["observations"] == 1
