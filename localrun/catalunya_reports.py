"""The Catalunya answers and charts, read from the marts (``localrun.reports`` prints and renders them).

* ``coverage_lines``: the comarques with the most and the fewest elderly-care places per 1,000 residents aged 65+.
* ``resolution_lines``: how many rows of each source found their municipality, and the ones that did not, with why.
* ``electricity_lines``: the newest year's electricity by sector.
* Charts: coverage by comarca (bars), a map of the municipalities drawn from their coordinates and coloured by
  coverage (no tiles, no network), and electricity by sector over the years.

matplotlib loads only when a chart is drawn; figures are made without pyplot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa

RATE = "elderly_places_per_1000_65_plus"


def _number(value: float | int | None, decimals: int = 2) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def ranked_comarques(coverage: pa.Table) -> list[dict[str, Any]]:
    """The comarques with a rate, from the most elderly-care places per 1,000 residents aged 65+ to the fewest
    (ties by name)."""
    rows = [r for r in coverage.to_pylist() if r[RATE] is not None]
    return sorted(rows, key=lambda r: (-r[RATE], r["comarca_name"]))


def coverage_lines(coverage: pa.Table, shown: int = 5) -> list[str]:
    """The most and the fewest elderly-care places per 1,000 residents aged 65+, by comarca, and Catalunya's."""
    rows = ranked_comarques(coverage)
    if not rows:
        return ["catalunya_coverage: no comarca has residents aged 65+ in the population data"]
    first = rows[0]
    places = sum(r["elderly_places"] for r in coverage.to_pylist())
    elderly = sum(r["population_65_plus"] or 0 for r in coverage.to_pylist())
    services = sum(r["services"] for r in coverage.to_pylist())
    residents = sum(r["population"] or 0 for r in coverage.to_pylist())
    lines = [
        f"catalunya_coverage: elderly-care places per 1,000 residents aged 65+, by comarca "
        f"({len(rows)} comarques; social-services register as read on {first['snapshot_date']}, "
        f"population of {first['population_year']})",
        f"  Catalunya: {_number(1000 * places / elderly if elderly else None)} "
        f"({places:,} places, {elderly:,} residents aged 65+); all services: "
        f"{_number(1000 * services / residents if residents else None)} per 1,000 residents",
        f"  {'':<8}{'comarca':<22}{'per 1,000 65+':>14}{'places':>9}{'residents 65+':>15}",
    ]
    top, bottom = rows[:shown], rows[-shown:] if len(rows) > shown else []
    for label, group in (("most", top), ("fewest", bottom)):
        for i, r in enumerate(group):
            lines.append(
                f"  {label if i == 0 else '':<8}{r['comarca_name']:<22}{_number(r[RATE]):>14}"
                f"{r['elderly_places']:>9,}{r['population_65_plus']:>15,}"
            )
    return lines


def resolution_lines(resolution: pa.Table) -> list[str]:
    """Per source: rows that found their municipality, how, and the exceptions with their reasons."""
    lines = ["territory_resolution: source rows placed on a municipality of the official list"]
    for r in sorted(resolution.to_pylist(), key=lambda r: r["dataset_id"]):
        methods = ", ".join(
            f"{r[k]:,} {k.removeprefix('by_').replace('_', ' ')}" for k in sorted(r) if k.startswith("by_") and r[k]
        )
        lines.append(
            f"  {r['dataset_id']:<10} {r['resolved']:>7,} of {r['rows']:>7,} ({100 * r['resolution_rate']:.1f}%)"
            f"  by {methods or '-'}" + (f"; {r['unresolved']:,} quarantined" if r["unresolved"] else "")
        )
        for example in (r["unresolved_examples"] or "").splitlines():
            lines.append(f"      e.g. {example}")
    return lines


def electricity_lines(energy: pa.Table, sectors: pa.Table | None) -> list[str]:
    """The newest year's electricity in Catalunya by sector (the published figures; secrecy leaves some out)."""
    rows = energy.to_pylist()
    year = max(r["year"] for r in rows)
    labels = {} if sectors is None else {s["sector_code"]: s["sector_label"] for s in sectors.to_pylist()}
    totals: dict[int, int] = {}
    lacking: dict[int, int] = {}
    for r in rows:
        if r["year"] == year:
            totals[r["sector_code"]] = totals.get(r["sector_code"], 0) + (r["consumption_kwh"] or 0)
            lacking[r["sector_code"]] = lacking.get(r["sector_code"], 0) + r["municipalities_confidential"]
    lines = [f"catalunya_electricity: {year}, {sum(totals.values()) / 1e6:,.1f} GWh published, by sector"]
    for code, kwh in sorted(totals.items(), key=lambda kv: -kv[1]):
        secret = f" ({lacking[code]:,} municipalities under secrecy)" if lacking[code] else ""
        lines.append(f"  {labels.get(code, code)!s:<45}{kwh / 1e6:>12,.1f} GWh{secret}")
    return lines


PRINTERS: tuple[tuple[str, Callable[..., list[str]]], ...] = (
    ("agg_coverage_comarca", coverage_lines),
    ("territory_resolution", resolution_lines),
)


# ----------------------------------------------------------------------------------------------------------------
# Charts
# ----------------------------------------------------------------------------------------------------------------


def chart_coverage_by_comarca(coverage: pa.Table) -> Any:
    """Elderly-care places per 1,000 residents aged 65+, every comarca, with Catalunya's figure as a line."""
    rows = list(reversed(ranked_comarques(coverage)))
    fig = _figure(8.5, 9.0)
    ax = fig.add_subplot()
    ax.barh([r["comarca_name"] for r in rows], [r[RATE] for r in rows], color="tab:blue")
    places = sum(r["elderly_places"] for r in rows)
    elderly = sum(r["population_65_plus"] or 0 for r in rows)
    if elderly:
        ax.axvline(1000 * places / elderly, color="tab:red", linestyle="--", linewidth=1, label="Catalunya")
        ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    year = rows[0]["population_year"] if rows else ""
    ax.set_title(f"Elderly-care places per 1,000 residents aged 65+, by comarca (population {year})")
    ax.set_xlabel("places in residences, day centres and other services for older people, per 1,000 residents 65+")
    ax.grid(axis="x", alpha=0.3)
    return fig


def chart_coverage_map(by_municipality: pa.Table, municipalities: pa.Table, comarques: pa.Table | None = None) -> Any:
    """Every municipality at its coordinates, coloured by elderly-care places per 1,000 residents aged 65+ (grey:
    none), sized by residents; comarques named at the mean of their municipalities. No tiles: only the points."""
    from matplotlib.colors import Normalize

    where = {m["municipality_code"]: (m["longitude"], m["latitude"]) for m in municipalities.to_pylist()}
    rows = [r for r in by_municipality.to_pylist() if r["municipality_code"] in where]
    fig = _figure(8.5, 8.0)
    ax = fig.add_subplot()
    without = [r for r in rows if not r[RATE]]
    with_places = [r for r in rows if r[RATE]]

    def size(r: dict[str, Any]) -> float:
        return 2 + 0.35 * math.sqrt(r["population"] or 0)

    ax.scatter(
        [where[r["municipality_code"]][0] for r in without],
        [where[r["municipality_code"]][1] for r in without],
        s=[size(r) for r in without],
        color="lightgrey",
        label="no elderly-care place",
    )
    rates = sorted(r[RATE] for r in with_places)
    ceiling = rates[int(0.95 * (len(rates) - 1))] if rates else 1.0  # a few tiny villages would flatten the scale
    points = ax.scatter(
        [where[r["municipality_code"]][0] for r in with_places],
        [where[r["municipality_code"]][1] for r in with_places],
        s=[size(r) for r in with_places],
        c=[r[RATE] for r in with_places],
        cmap="viridis",
        norm=Normalize(0, ceiling),
        alpha=0.85,
    )
    fig.colorbar(points, ax=ax, shrink=0.7, label="elderly-care places per 1,000 residents 65+ (95th percentile cap)")
    if comarques is not None:
        for c in comarques.to_pylist():
            ax.annotate(c["comarca_name"], (c["longitude"], c["latitude"]), fontsize=5, ha="center", alpha=0.7)
    ax.set_aspect(1 / math.cos(math.radians(41.7)))  # degrees of longitude are shorter than of latitude here
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Municipalities of Catalunya ({len(rows)}), coloured by elderly-care places per 1,000 residents 65+")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def chart_electricity_by_sector(energy: pa.Table, sectors: pa.Table | None = None) -> Any:
    """Electricity consumption of Catalunya by sector and year (published figures, GWh), stacked."""
    labels = {} if sectors is None else {s["sector_code"]: s["sector_label"] for s in sectors.to_pylist()}
    totals: dict[tuple[int, int], int] = {}
    for r in energy.to_pylist():
        key = (r["sector_code"], r["year"])
        totals[key] = totals.get(key, 0) + (r["consumption_kwh"] or 0)
    years = sorted({year for _, year in totals})
    codes = sorted({code for code, _ in totals}, key=lambda c: -sum(v for (k, _), v in totals.items() if k == c))
    fig = _figure(9.0, 4.8)
    ax = fig.add_subplot()
    ax.stackplot(
        years,
        [[totals.get((code, year), 0) / 1e6 for year in years] for code in codes],
        labels=[str(labels.get(code, code)) for code in codes],
        alpha=0.85,
    )
    ax.set_title("Electricity use in Catalunya by sector (published figures; secrecy leaves some out)")
    ax.set_xlabel("year")
    ax.set_ylabel("GWh")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3)
    return fig


def catalunya_figures(mart: Callable[[str], pa.Table | None]) -> dict[str, Any]:
    """The Catalunya charts whose marts exist, by name (``mart(name)`` reads a mart or gives None)."""
    figures: dict[str, Any] = {}
    coverage = mart("agg_coverage_comarca")
    if coverage is not None and coverage.num_rows:
        figures["catalunya_coverage_by_comarca"] = chart_coverage_by_comarca(coverage)
    by_municipality, municipalities = mart("agg_coverage_municipality"), mart("dim_municipality")
    if by_municipality is not None and municipalities is not None:
        figures["catalunya_coverage_map"] = chart_coverage_map(by_municipality, municipalities, mart("dim_comarca"))
    energy = mart("agg_energy_comarca_yearly")
    if energy is not None and energy.num_rows:
        figures["catalunya_electricity_by_sector"] = chart_electricity_by_sector(energy, mart("dim_economic_sector"))
    return figures


def catalunya_lines(mart: Callable[[str], pa.Table | None]) -> list[str]:
    """Every Catalunya answer as text lines (a mart not built yet says so); none at all for a lake without the
    municipality dimension (a run of other sources only)."""
    if mart("dim_municipality") is None:
        return []
    lines: list[str] = []
    for name, lines_of in PRINTERS:
        table = mart(name)
        lines += [f"{name}: not built yet (its staging inputs are missing)"] if table is None else lines_of(table)
    energy = mart("agg_energy_comarca_yearly")
    if energy is not None and energy.num_rows:
        lines += electricity_lines(energy, mart("dim_economic_sector"))
    return lines
