"""Where a mart outgrows one function: each mart build's peak memory and time against the rows it reads.

Each measurement runs in a fresh process: a staging-shaped table of ``rows`` observations (quarterly series, as
``pr``), then one build, its peak RSS (the high-water mark reset after the table is built, so the figure is the
table plus the build) and its duration. A straight line through the points gives the rows at which a build would
reach the modeler's 1,536 MB (less a safety margin) or its 600 s: ``docs/scale.md`` reports them.

``python -m bench.scale.mart_limits`` prints the table; ``make bench-scale`` includes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.scale import paths

MODELER_MEMORY_MB = 1536
MODELER_TIMEOUT_S = 600
SAFETY = 0.8  # a build should stay under 80% of either limit
SIZES = (250_000, 1_000_000, 2_000_000, 4_000_000)
BUILDS = ("fact_partition", "agg_yearly_partition", "bls_best_year")

PROBE = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/shared", sys.argv[1] + "/services/modeler"]
import numpy as np, pyarrow as pa
from bench.scale.worker import peak_rss_mb, reset_peak
from modeler import domain as d

build, rows = sys.argv[2], int(sys.argv[3])
periods = np.array(["Q01", "Q02", "Q03", "Q04", "Q05"])
n = np.arange(rows)
series = n // 400  # 80 years of five periods per series
year = 1947 + (n // 5) % 80
table = pa.table({
    "series_id": pa.array(np.char.add("PRS", np.char.zfill(series.astype(str), 11))),
    "survey": pa.array(np.full(rows, "pr")),
    "year": pa.array(year.astype(np.int32)),
    "period": pa.array(periods[n % 5]),
    "value": pa.array(np.round(np.sin(n) * 100, 3)),
    "footnote_codes": pa.nulls(rows, pa.string()),
    "source_kind": pa.array(np.full(rows, "bulk")),
    "source_file": pa.array(np.full(rows, "pr.data.0.Current")),
    "_ingested_at": pa.array(np.full(rows, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
})
if build == "agg_yearly_partition":
    table = d.fact_bls_observation(table)
reset_peak()
started = time.perf_counter()
if build == "fact_partition":
    out = d.fact_bls_observation(table)
elif build == "agg_yearly_partition":
    out = d.agg_bls_series_yearly(table)
else:
    out = d.bls_best_year(table)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), "out_rows": out.num_rows}))
"""


def measure(build: str, rows: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(paths.ROOT), build, str(rows)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def limits() -> dict[str, Any]:
    """Each build's points and the rows at which it would reach 80% of the modeler's memory or timeout."""
    started = time.monotonic()
    out: dict[str, Any] = {}
    for build in BUILDS:
        points = [{"rows": rows, **measure(build, rows)} for rows in SIZES]
        good = [p for p in points if "error" not in p]
        entry: dict[str, Any] = {"points": points}
        if len(good) >= 2:
            slope, intercept = _fit([p["rows"] for p in good], [p["peak_rss_mb"] for p in good])
            entry["mb_per_million_rows"] = round(slope * 1e6, 1)
            entry["rows_at_memory_limit"] = int((MODELER_MEMORY_MB * SAFETY - intercept) / slope) if slope > 0 else None
            t_slope, t_intercept = _fit([p["rows"] for p in good], [p["seconds"] for p in good])
            entry["seconds_per_million_rows"] = round(t_slope * 1e6, 2)
            entry["rows_at_time_limit"] = (
                int((MODELER_TIMEOUT_S * SAFETY - t_intercept) / t_slope) if t_slope > 0 else None
            )
        out[build] = entry
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def render(result: dict[str, Any]) -> str:
    lines = [
        "### where a mart build outgrows the modeler (1,536 MB, 600 s; at 80% of each)",
        "",
        "| build | rows read -> peak MB, s | MB per million rows | rows at 80% of memory | rows at 80% of timeout |",
        "|---|---|---|---|---|",
    ]
    for build in BUILDS:
        entry = result[build]
        shown = "; ".join(
            f"{p['rows']:,} -> {p['peak_rss_mb']:.0f} MB, {p['seconds']:.1f} s"
            for p in entry["points"]
            if "error" not in p
        )
        lines.append(
            f"| {build} | {shown} | {entry.get('mb_per_million_rows')} | {entry.get('rows_at_memory_limit') or 0:,} | "
            f"{entry.get('rows_at_time_limit') or 0:,} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(limits()))
