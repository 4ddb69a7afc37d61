"""The Catalunya marts, as the registry (``modeler.registry``) lists them: inputs, schema, key and checks.

docs/catalunya.md tells each mart's rules to its users.
"""

from __future__ import annotations

from modeler.catalunya import coverage, energy, population, resolution, services, territory
from modeler.catalunya.checks import ClosedShare, MostlyPresent, ValidMunicipalityCodes
from modeler.checks import AcceptedValues, CoversInputKeys, InRange, NotNull, RowCountDelta, UniqueKey
from modeler.spec import MartSpec, mart, staging

DIM = "dim_municipality"
MUNICIPALITIES = territory.MUNICIPALITIES_TABLE
REGISTER = services.REGISTER_TABLE
POPULATION = population.POPULATION_TABLE
ENERGY = energy.ENERGY_TABLE
REGISTER_TABLES = tuple(services.table_of(d) for d in services.REGISTERS)
SOURCE_TABLES = tuple(sorted({*REGISTER_TABLES, MUNICIPALITIES, POPULATION, ENERGY}))
AGE_BANDS = ("0-14", "15-64", "65+")


def _staged(*names: str) -> tuple:
    """Inputs a mart reads when present (the registers: any of them is enough)."""
    return tuple(staging(name, required=False) for name in names)


CATALUNYA_MARTS: tuple[MartSpec, ...] = (
    MartSpec(
        name="dim_municipality",
        kind="dimensions",
        description="The 947 municipalities of Catalunya by Idescat code: INE code, comarca, province, coordinates.",
        inputs=(staging(MUNICIPALITIES),),
        build=lambda i, _prev: territory.dim_municipality(i[MUNICIPALITIES]),
        schema=territory.DIM_MUNICIPALITY_SCHEMA,
        key=("municipality_code",),
        checks=(
            NotNull(tuple(territory.DIM_MUNICIPALITY_SCHEMA.names[:10])),
            UniqueKey(("municipality_code",)),
            UniqueKey(("ine_code",)),
            ValidMunicipalityCodes(),
            AcceptedValues("province_code", tuple(territory.PROVINCES)),
            InRange("latitude", *territory.LATITUDE_RANGE),
            InRange("longitude", *territory.LONGITUDE_RANGE),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="dim_comarca",
        kind="dimensions",
        description="The comarques of the municipality dimension, with their municipalities and a label point.",
        inputs=(mart(DIM),),
        build=lambda i, _prev: territory.dim_comarca(i[DIM]),
        schema=territory.DIM_COMARCA_SCHEMA,
        key=("comarca_code",),
        checks=(
            NotNull(("comarca_code", "comarca_name", "municipalities", "latitude", "longitude")),
            UniqueKey(("comarca_code",)),
            UniqueKey(("comarca_name",)),
            InRange("municipalities", 1, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="fact_social_service",
        kind="facts",
        description="One row per service of the social-services register (ivft-vegh): place, type, places, owner.",
        inputs=(staging(REGISTER), mart(DIM)),
        build=lambda i, _prev: services.fact_social_service(i[REGISTER], i[DIM]),
        schema=services.FACT_SOCIAL_SERVICE_SCHEMA,
        key=("service_id",),
        checks=(
            NotNull(("service_id", "municipality_code", "comarca_code", "care_area", "ownership", "snapshot_date")),
            UniqueKey(("service_id",)),
            ValidMunicipalityCodes(),
            AcceptedValues("care_area", services.CARE_AREAS),
            AcceptedValues("ownership", services.OWNERSHIPS),
            InRange("capacity", 0, None),
            MostlyPresent("capacity", 0.9),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="dim_service_type",
        kind="dimensions",
        description="Every service type of the register, grouped into care areas, with its services and places.",
        inputs=(mart("fact_social_service"),),
        build=lambda i, _prev: services.dim_service_type(i["fact_social_service"]),
        schema=services.DIM_SERVICE_TYPE_SCHEMA,
        key=("service_type",),
        checks=(
            NotNull(("service_type", "care_area", "care_area_label", "services", "places")),
            UniqueKey(("service_type",)),
            AcceptedValues("care_area", services.CARE_AREAS),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="fact_register_changes",
        kind="facts",
        description="The register's history: services in the first snapshot, then opened and closed at each snapshot.",
        inputs=(staging(REGISTER), mart(DIM, required=False)),
        build=lambda i, prev: services.fact_register_changes(i[REGISTER], i.get(DIM), prev),
        schema=services.FACT_REGISTER_CHANGES_SCHEMA,
        key=("service_id", "snapshot_date"),
        checks=(
            NotNull(("service_id", "snapshot_date", "change", "care_area")),
            UniqueKey(("service_id", "snapshot_date")),
            AcceptedValues("change", services.CHANGES),
            ClosedShare(max_share=0.5),
            RowCountDelta(max_drop=0.5),
        ),
        incremental=True,
    ),
    MartSpec(
        name="agg_register_changes",
        kind="aggregates",
        description="Services and places opened and closed per register snapshot and care area.",
        inputs=(mart("fact_register_changes"),),
        build=lambda i, _prev: services.agg_register_changes(i["fact_register_changes"]),
        schema=services.AGG_REGISTER_CHANGES_SCHEMA,
        key=("snapshot_date", "care_area"),
        checks=(
            NotNull(("snapshot_date", "care_area", "baseline", "opened", "closed")),
            UniqueKey(("snapshot_date", "care_area")),
            AcceptedValues("care_area", services.CARE_AREAS),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="fact_population",
        kind="facts",
        description="Residents of Catalunya by year, municipality, sex and age band (b4rr-d25b).",
        inputs=(staging(POPULATION), mart(DIM)),
        build=lambda i, _prev: population.fact_population(i[POPULATION], i[DIM]),
        schema=population.FACT_POPULATION_SCHEMA,
        key=("year", "municipality_code", "sex", "age_band"),
        checks=(
            NotNull(tuple(population.FACT_POPULATION_SCHEMA.names)),
            UniqueKey(("year", "municipality_code", "sex", "age_band")),
            ValidMunicipalityCodes(),
            AcceptedValues("sex", tuple(population.SEXES.values())),
            AcceptedValues("age_band", AGE_BANDS),
            InRange("population", 0, None),
            InRange("year", 1900, 2100),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="dim_economic_sector",
        kind="dimensions",
        description="The economic sectors of the electricity data, with their published names and English labels.",
        inputs=(staging(ENERGY),),
        build=lambda i, _prev: energy.dim_economic_sector(i[ENERGY]),
        schema=energy.DIM_SECTOR_SCHEMA,
        key=("sector_code",),
        checks=(
            NotNull(("sector_code", "sector_name", "sector_label", "is_households")),
            UniqueKey(("sector_code",)),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="fact_energy_consumption",
        kind="facts",
        description="Electricity consumption (kWh) by year, municipality and sector (8idm-becu); null under secrecy.",
        inputs=(staging(ENERGY), mart(DIM)),
        build=lambda i, _prev: energy.fact_energy_consumption(i[ENERGY], i[DIM]),
        schema=energy.FACT_ENERGY_SCHEMA,
        key=("year", "municipality_code", "sector_code"),
        checks=(
            NotNull(("year", "municipality_code", "sector_code", "is_confidential", "includes_energy_sector")),
            UniqueKey(("year", "municipality_code", "sector_code")),
            ValidMunicipalityCodes(),
            InRange("consumption_kwh", 0, None),
            InRange("year", 1990, 2100),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_energy_municipality_yearly",
        kind="aggregates",
        description="Electricity per year and municipality: published sectors' sum, households, per resident.",
        inputs=(mart("fact_energy_consumption"), mart(DIM), mart("fact_population", required=False)),
        build=lambda i, _prev: energy.agg_energy_municipality_yearly(
            i["fact_energy_consumption"], i[DIM], i.get("fact_population")
        ),
        schema=energy.AGG_ENERGY_MUNICIPALITY_SCHEMA,
        key=("year", "municipality_code"),
        checks=(
            NotNull(("year", "municipality_code", "comarca_code", "sectors_published", "sectors_confidential")),
            UniqueKey(("year", "municipality_code")),
            InRange("kwh_per_resident", 0, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_energy_comarca_yearly",
        kind="aggregates",
        description="Electricity per year, comarca and sector: sum, municipalities covered and lacking, per resident.",
        inputs=(mart("fact_energy_consumption"), mart(DIM), mart("fact_population", required=False)),
        build=lambda i, _prev: energy.agg_energy_comarca_yearly(
            i["fact_energy_consumption"], i[DIM], i.get("fact_population")
        ),
        schema=energy.AGG_ENERGY_COMARCA_SCHEMA,
        key=("year", "comarca_code", "sector_code"),
        checks=(
            NotNull(("year", "comarca_code", "sector_code", "municipalities_published", "municipalities_confidential")),
            UniqueKey(("year", "comarca_code", "sector_code")),
            InRange("kwh_per_resident", 0, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_coverage_municipality",
        kind="aggregates",
        description="Per municipality: services, places and elderly-care places, per 1,000 residents (aged 65+).",
        inputs=(mart("fact_social_service"), mart("fact_population"), mart(DIM)),
        build=lambda i, _prev: coverage.agg_coverage_municipality(
            i["fact_social_service"], i["fact_population"], i[DIM]
        ),
        schema=coverage.AGG_COVERAGE_MUNICIPALITY_SCHEMA,
        key=("municipality_code",),
        checks=(
            NotNull(("municipality_code", "comarca_code", "population_year", "services", "places", "elderly_places")),
            UniqueKey(("municipality_code",)),
            CoversInputKeys("municipality_code", DIM),
            InRange("elderly_places_per_1000_65_plus", 0, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="agg_coverage_comarca",
        kind="aggregates",
        description="Per comarca: services, places and elderly-care places, per 1,000 residents (aged 65+).",
        inputs=(mart("agg_coverage_municipality"), mart("dim_comarca")),
        build=lambda i, _prev: coverage.agg_coverage_comarca(i["agg_coverage_municipality"], i["dim_comarca"]),
        schema=coverage.AGG_COVERAGE_COMARCA_SCHEMA,
        key=("comarca_code",),
        checks=(
            NotNull(("comarca_code", "comarca_name", "population", "population_65_plus", "elderly_places")),
            UniqueKey(("comarca_code",)),
            CoversInputKeys("comarca_code", "dim_comarca"),
            InRange("elderly_places_per_1000_65_plus", 0, None),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="fact_catalunya_services",
        kind="facts",
        version="2",  # 2: on the territory dimension (municipality and comarca codes), the registers only
        description="Services and capacity per register (women's, LGBTI, social services), municipality and year.",
        inputs=(*_staged(*REGISTER_TABLES), mart(DIM)),
        build=lambda i, prev: services.fact_catalunya_services(i, i[DIM], prev),
        schema=services.FACT_CATALUNYA_SCHEMA,
        key=("dataset_id", "municipality_code", "snapshot_year"),
        checks=(
            NotNull(("dataset_id", "municipality_code", "comarca_code", "snapshot_year", "services")),
            UniqueKey(("dataset_id", "municipality_code", "snapshot_year")),
            ValidMunicipalityCodes(),
            InRange("services", 1, None),
            RowCountDelta(max_drop=0.5),
        ),
        incremental=True,
    ),
    MartSpec(
        name="agg_catalunya_comarca_yearly",
        kind="aggregates",
        version="2",  # 2: by comarca code
        description="Services, municipalities served and capacity per register, comarca and snapshot year.",
        inputs=(mart("fact_catalunya_services"),),
        build=lambda i, _prev: services.agg_catalunya_comarca_yearly(i["fact_catalunya_services"]),
        schema=services.AGG_COMARCA_SCHEMA,
        key=("dataset_id", "comarca_code", "snapshot_year"),
        checks=(
            NotNull(("dataset_id", "comarca_code", "snapshot_year", "services", "municipalities")),
            UniqueKey(("dataset_id", "comarca_code", "snapshot_year")),
            RowCountDelta(max_drop=0.5),
        ),
    ),
    MartSpec(
        name="territory_resolution",
        kind="reports",
        description="Per Catalunya source: rows placed on a municipality, how, and the ones that were not, with why.",
        inputs=(*_staged(*SOURCE_TABLES), mart(DIM)),
        build=lambda i, _prev: resolution.territory_resolution(i, i[DIM]),
        schema=resolution.TERRITORY_RESOLUTION_SCHEMA,
        key=("dataset_id",),
        checks=(
            NotNull(("dataset_id", "rows", "resolved", "unresolved", "resolution_rate")),
            UniqueKey(("dataset_id",)),
            InRange("resolution_rate", 0.0, 1.0),
            RowCountDelta(max_drop=0.5),
        ),
    ),
)
