"""Render bench results as a markdown table, each figure beside its bar."""

from __future__ import annotations

import math
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def _row(rows: list[tuple[str, str, str, str]], name: str, value: Any, bar: str, met: bool | None) -> None:
    verdict = "n/a" if met is None else ("met" if met else "NOT MET")
    rows.append((name, _fmt(value), bar, verdict))


def _cold_import_rows(rows: list[tuple[str, str, str, str]], results: dict[str, Any]) -> None:
    cold = results.get("cold_import") or {}
    if cold:
        _row(rows, "cold_import floor_s", cold.get("floor_s"), "boto3 + Logger/Metrics/Tracer", None)
        _row(rows, "cold_import floor+pyarrow_s", cold.get("floor_plus_pyarrow_s"), "+ import pyarrow.parquet", None)
        _row(
            rows,
            "cold_import floor+pydantic (ratio_to_floor)",
            cold.get("floor_plus_pydantic_ratio_to_floor"),
            "reference: + pydantic, one model",
            None,
        )
        for name in ("scheduler", "extractor", "notifier", "transformer", "modeler"):
            entry = cold.get(name) or {}
            if "error" in entry:
                _row(rows, f"cold_import {name}", "error", entry["error"][:80], False)
                continue
            if name in {"transformer", "modeler"}:
                ratio = entry.get("ratio_to_floor_plus_pyarrow")
                label, bar, limit = "ratio_to_floor_plus_pyarrow", "<= 1.2", 1.2
            else:
                _row(rows, f"cold_import {name} (ratio_to_floor)", entry.get("ratio_to_floor"), "reference", None)
                ratio = entry.get("ratio_to_floor_plus_pydantic")
                label, bar, limit = "ratio_to_floor_plus_pydantic", "<= 1.15", 1.15
            _row(rows, f"cold_import {name} ({label})", ratio, bar, None if ratio is None else ratio <= limit)
    packaged = results.get("cold_import_packaged") or {}
    for name in ("scheduler", "extractor", "notifier"):
        entry = packaged.get(name) or {}
        if entry:
            for label in ("with_bytecode", "source_only"):
                text = "as built (bytecode shipped)" if label == "with_bytecode" else "source only (no bytecode)"
                _row(
                    rows,
                    f"cold_import {name} from its package, {text}: s / ratio",
                    f"{entry[f'{label}_s']} / {entry[f'{label}_ratio_to_floor']}",
                    "as Lambda loads it; floor in the same process",
                    None,
                )


def render(results: dict[str, Any]) -> str:  # noqa: C901, PLR0912 - one block per section of the bars
    rows: list[tuple[str, str, str, str]] = []
    for key, n, per_call in (("bls_api_calls_68_with_key", 68, 50), ("bls_api_calls_68_without_key", 68, 25)):
        value = results.get(key)
        _row(
            rows,
            key,
            value,
            f"= ceil({n}/{per_call}) = {math.ceil(n / per_call)}",
            None if value is None else value == math.ceil(n / per_call),
        )
    for case, data in (results.get("staging") or {}).items():
        _row(rows, f"{case}: rows", data.get("rows"), "", None)
        _row(rows, f"{case}: staging_s", data.get("staging_s"), "", None)
        _row(rows, f"{case}: pyarrow_floor_s", data.get("pyarrow_floor_s"), "", None)
        _row(rows, f"{case}: naive_pandas_s", data.get("naive_pandas_s"), "", None)
        ratio = data.get("floor_over_staging")
        rounds = data.get("floor_over_staging_by_round") or []
        if case == "socrata_1m":  # the bar holds in every round, not only in the median
            worst = min(rounds) if rounds else None
            _row(rows, f"{case}: floor_over_staging (median)", ratio, "reported", None)
            _row(rows, f"{case}: floor_over_staging, worst round", worst, ">= 0.8 in every round",
                 None if worst is None else worst >= 0.8)  # fmt: skip
        elif case == "survey_10m":
            _row(rows, f"{case}: floor_over_staging", ratio, ">= 0.8", None if ratio is None else ratio >= 0.8)
        else:  # the small real file: its fixed cost per landing is milliseconds; reported, no bar
            _row(rows, f"{case}: floor_over_staging", ratio, "reported (no bar)", None)
        if rounds:
            _row(rows, f"{case}: by round", " ".join(f"{r:.2f}" for r in rounds), "", None)
        _row(rows, f"{case}: pandas_over_staging", data.get("pandas_over_staging"), "(> 1: faster than pandas)", None)
        for who, mb in (data.get("peak_rss_mb") or {}).items():
            barred = who == "staging" and case != "pr_data_0_current"
            _row(
                rows,
                f"{case}: peak_rss_mb {who}",
                mb,
                "< 1024 (the transformer's MemorySize)" if barred else "",
                mb < 1024 if barred else None,
            )
        if "staging_error" in data:
            _row(rows, f"{case}: staging", "error", data["staging_error"][:80], False)
    _cold_import_rows(rows, results)
    package = results.get("package_mb") or {}
    estimated = "estimate" in str((package.get("layers_mb") or {}).get("aws_sdk_pandas_method", ""))
    for fn, entry in package.items():
        if isinstance(entry, dict) and "with_layers_mb" in entry:
            pandas = fn in {"TransformerFunction", "ModelerFunction"}
            label = "+layers, pandas layer estimated" if pandas and estimated else "+layers"
            _row(rows, f"package_mb {fn} ({label})", entry["with_layers_mb"], "< 250", entry["fits"])
    rerun = results.get("rerun_unchanged") or {}
    if rerun:
        _row(rows, "rerun_unchanged staging_writes", rerun.get("staging_writes"), "0", rerun.get("staging_writes") == 0)
        _row(
            rows,
            "rerun_unchanged transform_messages",
            rerun.get("transform_messages"),
            "0",
            rerun.get("transform_messages") == 0,
        )
    e2e = results.get("local_e2e_s") or {}
    if e2e:
        # "Well under a minute", read as at most 40 s (two thirds of it): the whole `make run` process, start to exit
        first = e2e.get("first_run_s", 99)
        _row(rows, "local_e2e_s (first run, whole process)", first, "well under 60 (<= 40)", first <= 40)
        for stage, seconds in (e2e.get("stages_s") or {}).items():
            _row(rows, f"  stage {stage}", seconds, "", None)
    for section, error in (results.get("errors") or {}).items():
        _row(rows, f"ERROR {section}", "", error[:100], False)
    width = [max(len(r[i]) for r in [("figure", "value", "bar", "verdict"), *rows]) for i in range(4)]
    lines = [
        "| " + " | ".join(h.ljust(width[i]) for i, h in enumerate(("figure", "value", "bar", "verdict"))) + " |",
        "|" + "|".join("-" * (w + 2) for w in width) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(width[i]) for i, c in enumerate(r)) + " |" for r in rows]
    return "\n".join(lines)
