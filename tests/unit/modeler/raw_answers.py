"""The report answers computed straight from the raw files, for the tests to compare the marts with.

Independent of the modeler and of any staging code: Python's csv and json modules, Decimal and Fraction
arithmetic, the rules of docs/reports.md written out again.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

QUARTERS = {"Q01", "Q02", "Q03", "Q04"}


def raw_pr_rows(path: Path) -> list[dict[str, str]]:
    """The bulk TSV with Python's csv module: CRLF, padded ids and values, a trailing empty footnote cell."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, (cell.strip() for cell in row), strict=True)) for row in reader]


def raw_population(path: Path) -> dict[int, int]:
    """Population by year from a DataUSA response (the tesseract jsonrecords shape or the legacy one)."""
    document = json.loads(path.read_text())
    if "columns" in document:
        return {int(r["Year"]): int(r["Population"]) for r in document["data"]}
    return {int(r["ID Year"]): int(r["Population"]) for r in document["data"]}


@dataclass(frozen=True)
class PopulationStats:
    years: list[int]
    mean: Fraction
    std_population: Decimal
    std_sample: Decimal


def expected_population_stats(population: dict[int, int], first: int = 2013, last: int = 2018) -> PopulationStats:
    years = sorted(y for y in population if first <= y <= last)
    values = [population[y] for y in years]
    n = len(values)
    mean = Fraction(sum(values), n)
    squares = sum((Fraction(x) - mean) ** 2 for x in values)
    with localcontext() as ctx:
        ctx.prec = 50
        total = Decimal(squares.numerator) / Decimal(squares.denominator)
        return PopulationStats(years, mean, (total / n).sqrt(), (total / (n - 1)).sqrt())


@dataclass(frozen=True)
class BestYears:
    best: dict[str, tuple[int, Decimal]]
    tied: set[str]
    annual_only: set[str]


def expected_best_years(rows: list[dict[str, str]]) -> BestYears:
    """Per series: the year with the largest Q01-Q04 sum (Q05 when the series has no quarter), earliest on a tie."""
    quarterly: dict[str, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    annual: dict[str, dict[int, Decimal]] = defaultdict(dict)
    has_quarters: set[str] = set()
    for r in rows:
        if r["value"] == "-":
            continue
        if r["period"] in QUARTERS:
            quarterly[r["series_id"]][int(r["year"])] += Decimal(r["value"])
            has_quarters.add(r["series_id"])
        elif r["period"] == "Q05":
            annual[r["series_id"]][int(r["year"])] = Decimal(r["value"])
    best, tied = {}, set()
    for series in {r["series_id"] for r in rows}:
        totals = quarterly[series] if series in has_quarters else annual[series]
        top = max(totals.values())
        years = sorted(y for y, v in totals.items() if v == top)
        best[series] = (years[0], top)
        if len(years) > 1:
            tied.add(series)
    return BestYears(best, tied, {s for s in best if s not in has_quarters})


def expected_series_population(
    rows: list[dict[str, str]], population: dict[int, int], series_id: str = "PRS30006032", period: str = "Q01"
) -> list[tuple[int, float, int | None]]:
    picked = [r for r in rows if r["series_id"] == series_id and r["period"] == period]
    values = sorted((int(r["year"]), float(r["value"])) for r in picked)
    return [(year, value, population.get(year)) for year, value in values]


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy)


def expected_correlations(rows: list[dict[str, str]], population: dict[int, int]) -> dict[str, tuple[int, float]]:
    """Per series: (years, Pearson r) of its Q05 (annual) values against the population of the same years."""
    annual: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r["period"] == "Q05" and int(r["year"]) in population:
            annual[r["series_id"]][int(r["year"])] = float(r["value"])
    result = {}
    for series, values in annual.items():
        years = sorted(values)
        result[series] = (len(years), pearson([values[y] for y in years], [float(population[y]) for y in years]))
    return result
