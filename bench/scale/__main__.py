"""`make bench-scale`: the pipeline at 1x, 10x and 100x of today's catalog and data, within Lambda's limits, costed.

For each scale: generate the inputs (once, into .bench-cache/), run the pipeline twice through the real handlers
(``bench.scale.harness``): a first run that lands, stages and models everything, then a run that finds nothing
changed. Prints each stage's figures and the cost of a run, with the growth from scale to scale, and writes
bench/scale_results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.scale import mart_limits, paths
from bench.scale.costs import PRICES_AS_OF, run_counts
from bench.scale.generate import Scale, prepare
from bench.scale.harness import FUNCTIONS, PassResult, ScaleRun
from bench.scale.report import render

RESULTS = paths.ROOT / "bench" / "scale_results.json"
LAMBDA_FULL_VCPU_MB = 1769  # the memory at which a Lambda function has one full vCPU
# Functions whose invocations watch the context's remaining time and hand over (a paging continuation) or postpone
# a record before it runs out: on Lambda's slower CPU they stop sooner, so their estimate shows the work an
# invocation did, not a duration that could pass the timeout.
TIME_BUDGETED = {"ExtractorFunction"}
BLS_KEY = "0123456789abcdef" * 2  # a made-up key: the replay then applies the keyed limits (50 series a query)


def stage_figures(result: PassResult, functions: dict[str, Any]) -> dict[str, Any]:
    """Each function's invocations, durations, memory and calls in one pass."""
    out: dict[str, Any] = {}
    for logical in FUNCTIONS:
        runs = [i for i in result.invocations if i.function == logical]
        decl = functions[logical]
        if not runs:
            out[logical] = {"invocations": 0, "memory_mb": decl.memory, "timeout_s": decl.timeout}
            continue
        longest = max(i.wall_s + i.cold_import_s for i in runs)
        # Lambda gives a function CPU in proportion to its memory (one vCPU at 1,769 MB): at 256 MB a second of CPU
        # here is about 6.9 s there. The estimate keeps the wait measured here and stretches the CPU time.
        stretch = max(1.0, LAMBDA_FULL_VCPU_MB / decl.memory)
        on_lambda = max(i.wall_s + i.cold_import_s + i.cpu_s * (stretch - 1) for i in runs)
        peak = max(i.peak_rss_mb for i in runs)
        s3 = {}
        for i in runs:
            for name, n in i.calls.items():
                if name.startswith("s3:"):
                    s3[name[3:]] = s3.get(name[3:], 0) + n
        counts = run_counts(runs, {logical: decl.memory}, {}, {})
        out[logical] = {
            "invocations": len(runs),
            "records": sum(i.records for i in runs),
            "duration_s": round(sum(i.wall_s + i.cold_import_s for i in runs), 2),
            "cpu_s": round(sum(i.cpu_s for i in runs), 2),
            "longest_s": round(longest, 2),
            "timeout_s": decl.timeout,
            "timeout_margin": round(1 - longest / decl.timeout, 3),
            "longest_cpu_s": round(max(i.cpu_s for i in runs), 2),
            "lambda_longest_est_s": round(on_lambda, 2),
            "lambda_timeout_margin_est": round(1 - on_lambda / decl.timeout, 3),
            "peak_rss_mb": round(peak, 1),
            "memory_mb": decl.memory,
            "memory_margin": round(1 - peak / decl.memory, 3),
            "cold_starts": sum(1 for i in runs if i.cold_import_s),
            "gb_seconds": round(counts.gb_seconds, 2),
            "s3_requests": dict(sorted(s3.items())),
            "errors": [i.error.splitlines()[-1] for i in runs if i.error][:5],
            "timed_out": sum(1 for i in runs if i.timed_out),
        }
    return out


def pass_summary(result: PassResult, functions: dict[str, Any]) -> dict[str, Any]:
    memory = {logical: functions[logical].memory for logical in FUNCTIONS}
    counts = run_counts(result.invocations, memory, result.polling, result.received)
    return {
        "run_id": result.run_id,
        "elapsed_s": round(result.elapsed_s, 1),
        "stages": stage_figures(result, functions),
        "counts": vars(counts),
        "cost_usd": {k: round(v, 6) for k, v in counts.cost().items()},
        "dead_letters": result.dead_letters,
        "large_dataset_pages": result.large_pages,
    }


def run_scale(scale: Scale, keep: bool) -> dict[str, Any]:
    started = time.monotonic()
    prepare(scale)
    generated_s = time.monotonic() - started
    work = paths.CACHE / "runs" / scale.name
    if work.exists():
        shutil.rmtree(work)
    run = ScaleRun(scale, work)
    try:
        run.cloud.client("ssm").put_parameter(
            Name=run.cloud.function_environment("ExtractorFunction")["BLS_API_KEY_PARAM"],
            Value=BLS_KEY,
            Type="SecureString",
            Overwrite=True,
        )
        first = run.run_pass("first run")
        large = run.large_dataset_landing()
        print(f"  {scale.name}: first run {first.elapsed_s:.0f} s", flush=True)
        again = run.run_pass("nothing changed")
        print(f"  {scale.name}: run with nothing changed {again.elapsed_s:.0f} s", flush=True)
        functions = run.cloud.functions
        return {
            "scale": scale.factor,
            "inputs": scale.describe(),
            "generate_s": round(generated_s, 1),
            "first_run": pass_summary(first, functions),
            "large_dataset_landing": large,
            "unchanged_run": pass_summary(again, functions),
            "lake_objects": run.lake_objects(),
            "moto_peak_rss_mb": round(run.moto.rss_mb(), 1),
        }
    finally:
        run.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="1,10,100", help="comma-separated scale factors")
    parser.add_argument("--keep", action="store_true", help="keep each scale's logs under .bench-cache/runs/")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-mart-limits", action="store_true", help="skip where a mart build outgrows the modeler")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(10_000)
    results: dict[str, Any] = {"prices_as_of": PRICES_AS_OF, "scales": []}
    started = time.monotonic()
    for factor in (int(f) for f in args.scales.split(",")):
        print(f"scale {factor}x ...", flush=True)
        results["scales"].append(run_scale(Scale(factor), args.keep))
    if not args.no_mart_limits:
        print("where a mart build outgrows the modeler ...", flush=True)
        results["mart_limits"] = mart_limits.limits()
    results["total_s"] = round(time.monotonic() - started, 1)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    if "mart_limits" in results:
        print("\n" + mart_limits.render(results["mart_limits"]))
    print(
        f"\nwritten: {args.output.relative_to(paths.ROOT) if args.output.is_relative_to(paths.ROOT) else args.output}"
    )
    failed = [
        f"{s['scale']}x {p}"
        for s in results["scales"]
        for p in ("first_run", "unchanged_run")
        if s[p]["dead_letters"]
        or any(
            st.get("timed_out") or (name not in TIME_BUDGETED and st.get("lambda_timeout_margin_est", 1) < 0)
            for name, st in s[p]["stages"].items()
        )
    ]
    if failed:
        print("limits or dead letters: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
