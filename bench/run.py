"""`make bench`: measure the performance bars (docs/bars.md) as ratios against baselines measured in the same run.

Prints a markdown table and writes bench/results.json. Every timing is a median over repetitions, each in a
fresh process where memory or cold start matters. Figures that depend on the machine's load are marked noisy.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "shared", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
PY = sys.executable
RESULTS = ROOT / "bench" / "results.json"
PR_CURRENT = ROOT / "data" / "replay" / "bls_bulk" / "pr" / "pr.data.0.Current"
HANDLERS = {
    "scheduler": "scheduler.handler",
    "extractor": "extractor.handler",
    "transformer": "transformer.handler",
    "modeler": "modeler.handler",
    "notifier": "notifier.handler",
}
ARROW_HANDLERS = ("transformer", "modeler")  # measured against the floor plus pyarrow.parquet
LIGHT_HANDLERS = ("scheduler", "extractor", "notifier")  # measured against the floor plus pydantic (the bar)
SURVEY_REPLICAS = 87  # the pr survey replicated to 10.05 million observations (bench.scale.gen_bulk)
LAMBDA_UNZIPPED_LIMIT_MB = 250


def probe(*args: str) -> dict[str, Any]:
    """Run one probe in a fresh interpreter and return its JSON result."""
    out = subprocess.run([PY, "-m", "bench.probes", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- staging throughput ------------------------------------------------------------------------------------------
def staging_case(
    kind: str,
    source: Path,
    floor_source: Path,
    floor: str,
    naive: str,
    repeat: int,
    work: Path,
    naive_rounds: int | None = None,
) -> dict[str, Any]:
    """Staging vs a bare pyarrow read->write and vs naive pandas, on the same rows, each in fresh processes.

    Small inputs run warm (two untimed runs, then the median of seven, in each process), as Lambda's warm
    invocations do; large ones run once per process. The three cases are always measured the same way, and
    round by round (staging, floor, pandas, then again), so a change in the machine's load moves them alike.
    A small input takes at least 7 rounds: its runs last tens of milliseconds, and this VM's noise is of that size.
    """
    size = sum(f.stat().st_size for f in source.iterdir() if f.is_file()) if source.is_dir() else source.stat().st_size
    out: dict[str, Any] = {"input_mb": round(size / 2**20, 1)}
    small = size < 50 * 2**20
    inner = ["--warmup", "2", "--inner", "7"] if small else []
    rounds = max(repeat, 7) if small else repeat
    out["method"] = (
        f"warm, median of 7 in each process, {rounds} interleaved rounds"
        if small
        else f"one run per process, {rounds} interleaved rounds"
    )
    target = work / f"{kind}-out"
    runs: dict[str, list[dict[str, Any]]] = {"staging": [], "floor": [], "naive": []}
    # The inputs were just generated: their hundreds of MB of dirty pages would be written back during the first
    # round, under the probe that runs first (staging) only. Written back now, every round starts alike.
    os.sync()
    for round_ in range(rounds):
        if "staging_error" not in out:
            try:
                runs["staging"].append(probe("staging", *inner, kind, str(source), str(target)))
            except RuntimeError as exc:
                out["staging_error"] = str(exc)[-300:]
        runs["floor"].append(probe(floor, *inner, str(floor_source), str(work / f"{kind}-floor.parquet")))
        if round_ < (naive_rounds or max(1, rounds // 2)):  # pandas is the slow baseline: fewer runs
            runs["naive"].append(probe(naive, *inner, str(source), str(work / f"{kind}-pandas.parquet")))
    floor_s = statistics.median(r["seconds"] for r in runs["floor"])
    naive_s = statistics.median(r["seconds"] for r in runs["naive"])
    out.update(
        {
            "rows": runs["floor"][0]["rows"],
            "pyarrow_floor_s": round(floor_s, 4),
            "naive_pandas_s": round(naive_s, 4),
            "peak_rss_mb": {
                "pyarrow_floor": statistics.median(r["peak_rss_mb"] for r in runs["floor"]),
                "naive_pandas": statistics.median(r["peak_rss_mb"] for r in runs["naive"]),
            },
        }
    )
    if runs["staging"] and "staging_error" not in out:
        staged_s = statistics.median(r["seconds"] for r in runs["staging"])
        out["staging_s"] = round(staged_s, 4)
        out["staging_rows"] = runs["staging"][0]["rows"]
        out["peak_rss_mb"]["staging"] = statistics.median(r["peak_rss_mb"] for r in runs["staging"])
        out["floor_over_staging"] = round(floor_s / staged_s, 3)
        out["pandas_over_staging"] = round(naive_s / staged_s, 3)
        # the same ratio round by round: its spread shows how far one figure can be trusted
        out["floor_over_staging_by_round"] = [
            round(f["seconds"] / s["seconds"], 3) for f, s in zip(runs["floor"], runs["staging"], strict=False)
        ]
    return out


def bench_staging(repeat: int, rows: int, work: Path) -> dict[str, Any]:
    from bench.gen_socrata import generate
    from bench.scale.generate import survey_folder

    results = {
        "pr_data_0_current": staging_case("bls_bulk", PR_CURRENT, PR_CURRENT, "floor_tsv", "pandas_tsv", repeat, work)
    }
    survey = survey_folder(SURVEY_REPLICAS)  # generated once, kept in .bench-cache/
    results["survey_10m"] = staging_case(
        "bls_bulk", survey, survey, "floor_tsv_files", "pandas_tsv_files", repeat, work, naive_rounds=1
    )
    socrata = work / "socrata_1m.json"
    ndjson = work / "socrata_1m.ndjson"
    generate(socrata, rows, ndjson_path=ndjson)
    results["socrata_1m"] = staging_case("socrata", socrata, ndjson, "floor_ndjson", "pandas_json", repeat, work)
    results["socrata_1m"]["generated_rows"] = rows
    return results


# -- cold start --------------------------------------------------------------------------------------------------
def bench_cold_import(repeat: int) -> dict[str, Any]:
    """Cold import of each handler against its floor, as medians over fresh processes.

    Each process imports the floor first, then the handler (or the reference), each timed: the handler's cold
    import is the two together, and its ratio to the floor is taken in that process, at one moment of the
    machine's load. On this VM a fresh process's import time moves by up to 50% from one process to the next;
    ratios of two imports in separate processes moved as much, paired ones by a few percent. The floor plus
    ``pyarrow.parquet`` is measured the same way, so the transformer's and the modeler's bar is the ratio of the two
    paired ratios (their handlers load pyarrow on first use, not at import). Rounds are interleaved.

    The modules are compiled to bytecode first, as ``make build`` ships them: without it, a shell that sets
    ``PYTHONDONTWRITEBYTECODE`` (or a source newer than its ``.pyc``) would time the compiler on every import.
    """
    for folder in ("shared", "services", "bench"):
        compileall.compile_dir(ROOT / folder, quiet=2)
    floor = "bench.floor_module"
    floor_pydantic = "bench.floor_module_pydantic"
    cases = {
        **{name: (floor, module) for name, module in HANDLERS.items()},
        # the bar of the light handlers: against the floor plus pydantic (pydantic is part of the design)
        **{f"{name}@pydantic": (floor_pydantic, HANDLERS[name]) for name in LIGHT_HANDLERS},
        "floor_arrow": (floor, "bench.floor_module_arrow"),
        "floor_pydantic": (floor, floor_pydantic),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    errors: dict[str, str] = {}
    for _ in range(repeat):
        for name, (base, module) in cases.items():
            if name in errors:
                continue
            try:
                runs[name].append(probe("import_after", base, module))
            except RuntimeError as exc:
                errors[name] = str(exc)[-200:]

    def ratio(name: str) -> float:
        return statistics.median((r["base_s"] + r["extra_s"]) / r["base_s"] for r in runs[name])

    def total_s(name: str) -> float:
        return round(statistics.median(r["base_s"] + r["extra_s"] for r in runs[name]), 4)

    out: dict[str, Any] = {
        "repeat": repeat,
        "method": "floor then the handler in each fresh process; median of the per-process ratios",
        "floor_s": round(
            statistics.median(r["base_s"] for name, rs in runs.items() if cases[name][0] == floor for r in rs), 4
        ),
    }
    for reference, key in (("floor_arrow", "floor_plus_pyarrow"), ("floor_pydantic", "floor_plus_pydantic")):
        if reference not in errors:
            out[f"{key}_s"] = total_s(reference)
            out[f"{key}_ratio_to_floor"] = round(ratio(reference), 3)
    for name in HANDLERS:
        if name in errors:
            out[name] = {"error": errors[name]}
            continue
        entry: dict[str, Any] = {"import_s": total_s(name), "ratio_to_floor": round(ratio(name), 3)}
        if name in ARROW_HANDLERS and "floor_arrow" not in errors:
            entry["ratio_to_floor_plus_pyarrow"] = round(ratio(name) / ratio("floor_arrow"), 3)
        paired = f"{name}@pydantic"
        if name in LIGHT_HANDLERS and paired not in errors:
            # paired in each process with the floor plus pydantic, imported first
            entry["ratio_to_floor_plus_pydantic"] = round(ratio(paired), 3)
        out[name] = entry
    return out


# What a packaged handler's import looks like to Lambda: the function's and the shared layer's build artifacts on
# sys.path, nothing written (/var/task and /opt are read-only), the floor timed in the same process first.
_PACKAGED_PROBE = """
import importlib, json, os, sys, time
sys.path[:0] = sys.argv[1:3]
from tests.env import TEST_ENV
os.environ.update(TEST_ENV)
started = time.perf_counter()
import bench.floor_module
floor = time.perf_counter() - started
started = time.perf_counter()
importlib.import_module(sys.argv[3])
print(json.dumps({"floor_s": floor, "import_s": time.perf_counter() - started}))
"""

PACKAGED = {
    "scheduler": "SchedulerFunction",
    "extractor": "ExtractorFunction",
    "notifier": "NotifierFunction",
}


def _packaged_copy(build_dir: Path, function: str, target: Path, bytecode: bool) -> tuple[Path, Path]:
    """The function's and the layer's artifacts, copied with or without their ``__pycache__`` folders."""
    ignore = None if bytecode else shutil.ignore_patterns("__pycache__")
    code, layer = target / "task", target / "opt"
    shutil.copytree(build_dir / function, code, ignore=ignore)
    shutil.copytree(build_dir / "SharedLayer" / "python", layer, ignore=ignore)
    return code, layer


def bench_cold_import_packaged(build_dir: Path, repeat: int, work: Path) -> dict[str, Any]:
    """The light handlers imported from their ``sam build`` artifacts, with the bytecode the build ships and from
    source only (as Lambda would compile them at every cold start without it); medians over fresh processes,
    round by round. The floor is timed in each process, just before the handler, so each ratio is paired.
    """
    trees = {}
    for name, function in PACKAGED.items():
        for bytecode in (True, False):
            trees[(name, bytecode)] = _packaged_copy(build_dir, function, work / f"{name}-{bytecode}", bytecode)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    samples: dict[tuple[str, bool], list[tuple[float, float]]] = {key: [] for key in trees}
    for _ in range(repeat):
        for (name, bytecode), (code, layer) in trees.items():
            out = subprocess.run(
                [PY, "-c", _PACKAGED_PROBE, str(code), str(layer), HANDLERS[name]],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"packaged import of {name} failed: {out.stderr.strip()[-1000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            samples[(name, bytecode)].append((result["floor_s"], result["import_s"]))
    report: dict[str, Any] = {"repeat": repeat}
    for name in PACKAGED:
        entry = {}
        for bytecode, label in ((True, "with_bytecode"), (False, "source_only")):
            runs = samples[(name, bytecode)]
            entry[f"{label}_s"] = round(statistics.median(i for _, i in runs), 4)
            # the handler's own import over the floor's, both in the same process
            entry[f"{label}_ratio_to_floor"] = round(statistics.median((f + i) / f for f, i in runs), 3)
        report[name] = entry
    return report


# -- package size ------------------------------------------------------------------------------------------------
def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _installed_files(*distributions: str) -> list[Path]:
    from importlib.metadata import distribution

    files = []
    for name in distributions:
        dist = distribution(name)
        files += [Path(dist.locate_file(f)) for f in dist.files or []]
    return [f for f in files if f.is_file()]


def _installed_mb(*distributions: str) -> float:
    """Unzipped size of installed distributions, as pip installed them."""
    return sum(f.stat().st_size for f in _installed_files(*distributions)) / 2**20


# What the AWS SDK for pandas layer's build (aws-sdk-pandas building/lambda/build-lambda-layer.sh) leaves out of
# the wheels we install: pyarrow is built without Flight, Gandiva, ORC or Substrait; tests and bytecode are deleted;
# shared libraries are stripped.
_NOT_IN_MANAGED_LAYER = ("/tests/", "/__pycache__/", "flight", "substrait", "gandiva", "_orc", "/include/")


def _managed_layer_estimate_mb(*distributions: str) -> float:
    strip = shutil.which("strip")
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in _installed_files(*distributions):
            text = path.as_posix()
            if any(part in text for part in _NOT_IN_MANAGED_LAYER) or path.suffix == ".pyc":
                continue
            size = path.stat().st_size
            if strip and (path.suffix == ".so" or ".so." in path.name):
                out = Path(tmp) / "stripped"
                if subprocess.run([strip, "-o", str(out), str(path)], capture_output=True, check=False).returncode == 0:
                    size = out.stat().st_size
            total += size
    return total / 2**20


def _zip_unzipped_mb(path: Path) -> float:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist()) / 2**20


def bench_package(build_dir: Path, pandas_layer_zip: Path | None = None) -> dict[str, Any]:
    """Each function's ``sam build`` artifact plus its layers, unzipped, against Lambda's 250 MB.

    Our own parts are measured (the build output; Powertools and pydantic as installed). The AWS SDK for pandas
    managed layer cannot be downloaded offline: with ``--pandas-layer-zip`` (the zip from
    ``aws lambda get-layer-version-by-arn``) its real size is used; else the layer rebuilt from its recipe by
    ``python -m bench.layer_size`` (an upper bound, see there); else an estimate: the pandas, pyarrow and numpy we
    install, trimmed as the layer's build recipe trims them, a lower bound (without awswrangler and its drivers).
    """
    if not build_dir.exists():
        return {"error": f"{build_dir} does not exist: run `make build` first"}
    shared = _dir_mb(build_dir / "SharedLayer")
    powertools = _installed_mb(
        "aws-lambda-powertools",
        "pydantic",
        "pydantic-core",
        "aws-xray-sdk",
        "wrapt",
        "jmespath",
        "typing-extensions",
        "annotated-types",
        "typing-inspection",
    )
    wheels = ("pandas", "pyarrow", "numpy", "python-dateutil", "pytz", "tzdata", "six")
    rebuilt = Path(__file__).resolve().parent / "layer_size.json"  # python -m bench.layer_size
    if pandas_layer_zip is not None:
        pandas_layer, method = _zip_unzipped_mb(pandas_layer_zip), f"measured: {pandas_layer_zip.name}"
    elif rebuilt.exists():
        layer = json.loads(rebuilt.read_text())
        pandas_layer = layer["unzipped_mb"]
        method = (
            f"rebuilt from its recipe (bench/layer_size.py), release {layer['release']}: zips to {layer['zip_mb']} MB "
            f"against {layer['published_zip_mb']} MB published, so an upper bound (its pyarrow is the PyPI wheel, "
            "larger than the layer's own minimal build)"
        )
    else:
        pandas_layer = _managed_layer_estimate_mb(*wheels)
        method = "estimate: installed wheels trimmed by the layer's build recipe, without awswrangler's own deps"
    out: dict[str, Any] = {
        "limit_mb": LAMBDA_UNZIPPED_LIMIT_MB,
        "layers_mb": {
            "shared": round(shared, 2),
            "powertools_approx": round(powertools, 1),
            "aws_sdk_pandas": round(pandas_layer, 1),
            "aws_sdk_pandas_method": method,
            "pandas_pyarrow_numpy_as_pip_installs_them": round(_installed_mb(*wheels), 1),
        },
    }
    for fn in ("SchedulerFunction", "ExtractorFunction", "TransformerFunction", "ModelerFunction", "NotifierFunction"):
        own = _dir_mb(build_dir / fn)
        total = own + shared + powertools + (pandas_layer if fn in {"TransformerFunction", "ModelerFunction"} else 0)
        out[fn] = {
            "function_mb": round(own, 2),
            "with_layers_mb": round(total, 1),
            "fits": total < LAMBDA_UNZIPPED_LIMIT_MB,
        }
    return out


# -- local runs --------------------------------------------------------------------------------------------------
def local_run(lake: Path) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [PY, "-m", "localrun", "--lake-dir", str(lake)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"local run failed: {out.stderr[-2000:]}")
    runs = sorted((lake / "_local" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    record = json.loads(runs[-1].read_text())
    record["wall_s"] = round(seconds, 2)
    return record


def _staging_state(lake: Path) -> dict[str, float]:
    root = lake / "staging"
    return (
        {p.relative_to(lake).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
        if (root.exists())
        else {}
    )


def bench_local_runs(work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    lake = work / "lake"
    first = local_run(lake)
    before = _staging_state(lake)
    second = local_run(lake)
    after = _staging_state(lake)
    staging_writes = sum(1 for k, v in after.items() if before.get(k) != v) + len(set(before) - set(after))
    stages = {name: round(s["seconds"], 2) for name, s in first["stages"].items()}
    e2e = {"first_run_s": first["wall_s"], "stages_s": stages, "run_id": first["run_id"]}
    transform_messages = second["stages"].get("TransformerFunction", {}).get("received", 0)
    rerun = {
        "staging_writes": staging_writes,
        "transform_messages": transform_messages,
        "second_run_s": second["wall_s"],
        "goal": 0,
    }
    return e2e, rerun


# -- BLS API calls -----------------------------------------------------------------------------------------------
def bench_api_calls() -> dict[str, Any]:
    from bench.api_calls import count_api_calls

    return {
        "bls_api_calls_68_with_key": count_api_calls(68, with_key=True),
        "bls_api_calls_68_without_key": count_api_calls(68, with_key=False),
    }


# -- report ------------------------------------------------------------------------------------------------------
def guarded(name: str, fn: Callable[[], Any], errors: dict[str, str]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a failed section is reported, never faked
        errors[name] = f"{type(exc).__name__}: {exc}"[-500:]
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each staging measurement")
    parser.add_argument("--import-repeat", type=int, default=11, help="fresh processes per cold-import median")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated Socrata dataset")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument(
        "--pandas-layer-zip", type=Path, help="the AWS SDK for pandas layer's zip, for its real size (else estimated)"
    )
    parser.add_argument(
        "--only", action="append", choices=("api", "staging", "cold_import", "package", "local"), help="run only these"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="odp-bench-"))
    errors: dict[str, str] = {}
    results: dict[str, Any] = {}
    try:
        wanted = set(args.only or ("api", "staging", "cold_import", "package", "local"))
        if "api" in wanted:
            results.update(guarded("bls_api_calls", bench_api_calls, errors) or {})
        if "staging" in wanted:
            results["staging"] = guarded("staging", lambda: bench_staging(args.repeat, args.rows, work), errors)
        if "cold_import" in wanted:
            results["cold_import"] = guarded("cold_import", lambda: bench_cold_import(args.import_repeat), errors)
            results["cold_import_packaged"] = guarded(
                "cold_import_packaged",
                lambda: bench_cold_import_packaged(args.build_dir, args.import_repeat, work / "packaged"),
                errors,
            )
        if "package" in wanted:
            results["package_mb"] = guarded(
                "package_mb", lambda: bench_package(args.build_dir, args.pandas_layer_zip), errors
            )
        if "local" in wanted:
            local = guarded("local_runs", lambda: bench_local_runs(work), errors)
            if local:
                results["local_e2e_s"], results["rerun_unchanged"] = local
        results["noisy"] = [
            "staging.*_s and cold_import.* depend on the machine's load (medians reported)",
            "local_e2e_s is a single run",
        ]
        results["errors"] = errors
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only and RESULTS.exists():  # a partial run replaces its own parts; the others keep their last figures
        previous = json.loads(RESULTS.read_text())
        results = {**previous, **results}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    from bench.table import render

    print(render(results))
    print(f"\nwritten: {RESULTS.relative_to(ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
