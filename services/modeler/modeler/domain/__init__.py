"""The marts as pure ``Table -> Table`` functions (Dagster-style assets without the framework).

No boto3, no environment, no Powertools: pyarrow only. Every function takes Arrow tables (the staging tables
already read, or other marts) and returns an Arrow table; the registry (``modeler.registry``) says which function
builds which mart from which inputs, and the rebuild (``modeler.build``) reads, checks and publishes.

- ``arrow_helpers``: columns read whatever the staging wrote, first and newest rows per key, exact sums;
- ``bls_marts``: the observation fact, the series and time dimensions, the yearly aggregate;
- ``population``: the vintage the reports use, the population per year and its statistics;
- ``reports``: the best year of each series, a series beside the population, the correlation.

The rules behind every answer (which value wins, which vintage, how ties and gaps are treated) are written in each
module's docstring, and for a reader of the reports in ``docs/reports.md``. This package gathers the marts'
functions and schemas under one name, ``modeler.domain``, for the registry.
"""

from modeler.domain.arrow_helpers import (
    MICRO,
    exact_micros,
    first_per_group,
    from_micros,
    int32_column,
    latest_rows,
    text_column,
    time_key,
)
from modeler.domain.bls_marts import (
    ALL_PERIODS,
    ANNUAL_PERIODS,
    CURRENT_FILE_SUFFIX,
    DIM_SERIES_SCHEMA,
    DIM_TIME_SCHEMA,
    FACT_BLS_SCHEMA,
    FACT_INPUT_SCHEMA,
    MONTHS,
    PERIOD_TYPES,
    QUARTERS,
    YEARLY_SCHEMA,
    agg_bls_series_yearly,
    current_bulk_file,
    dim_series,
    dim_time,
    fact_bls_observation,
    pieces_of,
)
from modeler.domain.population import (
    NATION_GEOGRAPHY_ID,
    POPULATION_STATS_SCHEMA,
    POPULATION_VINTAGE_PREFERENCE,
    POPULATION_YEARLY_SCHEMA,
    population_stats,
    population_yearly,
    preferred_population,
)
from modeler.domain.reports import (
    BEST_YEAR_SCHEMA,
    CORRELATION_SCHEMA,
    MIN_CORRELATION_YEARS,
    SERIES_POPULATION_SCHEMA,
    bls_best_year,
    bls_population_correlation,
    series_population,
)
from modeler.spec import NoInputRows

__all__ = [
    "ALL_PERIODS",
    "ANNUAL_PERIODS",
    "BEST_YEAR_SCHEMA",
    "CORRELATION_SCHEMA",
    "CURRENT_FILE_SUFFIX",
    "DIM_SERIES_SCHEMA",
    "DIM_TIME_SCHEMA",
    "FACT_BLS_SCHEMA",
    "FACT_INPUT_SCHEMA",
    "MICRO",
    "MIN_CORRELATION_YEARS",
    "MONTHS",
    "NATION_GEOGRAPHY_ID",
    "NoInputRows",
    "PERIOD_TYPES",
    "POPULATION_STATS_SCHEMA",
    "POPULATION_VINTAGE_PREFERENCE",
    "POPULATION_YEARLY_SCHEMA",
    "QUARTERS",
    "SERIES_POPULATION_SCHEMA",
    "YEARLY_SCHEMA",
    "agg_bls_series_yearly",
    "bls_best_year",
    "bls_population_correlation",
    "current_bulk_file",
    "dim_series",
    "dim_time",
    "exact_micros",
    "fact_bls_observation",
    "first_per_group",
    "from_micros",
    "int32_column",
    "latest_rows",
    "pieces_of",
    "population_stats",
    "population_yearly",
    "preferred_population",
    "series_population",
    "text_column",
    "time_key",
]
