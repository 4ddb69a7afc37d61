"""The scale benchmark's results as markdown tables: each stage at each scale, the cost of a run, the growth."""

from __future__ import annotations

from typing import Any

from bench.scale.harness import FUNCTIONS

SHORT = {
    "SchedulerFunction": "scheduler",
    "ExtractorFunction": "extractor",
    "TransformerFunction": "transformer",
    "ModelerFunction": "modeler",
    "NotifierFunction": "notifier",
}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _ratio(new: float, old: float) -> str:
    return "n/a" if not old else f"x{new / old:.1f}"


def _estimate(stage: dict[str, Any], logical: str) -> str:
    if "lambda_longest_est_s" not in stage:
        return "n/a"
    # the extractor hands over or postpones by the context's remaining time: on a slower CPU it stops sooner
    budgeted = " budgeted" if logical == "ExtractorFunction" else ""
    return f"{stage['lambda_longest_est_s']:.1f} ({_pct(stage['lambda_timeout_margin_est'])}{budgeted})"


def stage_table(results: dict[str, Any], run: str) -> list[str]:
    lines = [
        f"### {run.replace('_', ' ')}: each stage",
        "",
        "| scale | stage | invocations | billed s | CPU s | longest s / timeout (margin) | longest on Lambda, est. s "
        "(margin) | peak MB / memory (margin) | S3 PUT-class / GET-class | GB-s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scale in results["scales"]:
        for logical in FUNCTIONS:
            st = scale[run]["stages"][logical]
            if not st["invocations"]:
                continue
            s3 = st["s3_requests"]
            put = sum(
                n for op, n in s3.items() if op.startswith(("Put", "Copy", "List", "Upload", "Create", "Complete"))
            )
            get = sum(n for op, n in s3.items() if op.startswith(("Get", "Head")))
            timed_out = f", {st['timed_out']} timed out" if st["timed_out"] else ""
            lines.append(
                f"| {scale['scale']}x | {SHORT[logical]} | {st['invocations']} | {st['duration_s']:.1f} | "
                f"{st['cpu_s']:.1f} | {st['longest_s']:.1f} / {st['timeout_s']} "
                f"({_pct(st['timeout_margin'])}{timed_out}) | "
                f"{_estimate(st, logical)} | "
                f"{st['peak_rss_mb']:.0f} / {st['memory_mb']} ({_pct(st['memory_margin'])}) | {put} / {get} | "
                f"{st['gb_seconds']:.1f} |"
            )
    return lines


def cost_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "### cost of one daily run (USD)",
        "",
        "| scale | run | Lambda | S3 requests | SQS | SNS | DynamoDB | total | elapsed s (local, serial) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scale in results["scales"]:
        for run, label in (("first_run", "first (everything new)"), ("unchanged_run", "nothing changed")):
            c = scale[run]["cost_usd"]
            lines.append(
                f"| {scale['scale']}x | {label} | {c['lambda']:.5f} | {c['s3_requests']:.5f} | {c['sqs']:.6f} | "
                f"{c['sns']:.6f} | {c['dynamodb']:.6f} | **{c['total']:.5f}** | {scale[run]['elapsed_s']:.0f} |"
            )
    return lines


def growth_table(results: dict[str, Any]) -> list[str]:
    scales = results["scales"]
    if len(scales) < 2:
        return []
    lines = [
        "### growth from scale to scale (first run)",
        "",
        "| figure | "
        + " | ".join(f"{a['scale']}x -> {b['scale']}x" for a, b in zip(scales, scales[1:], strict=False))
        + " |",
        "|---|" + "---|" * (len(scales) - 1),
    ]

    def row(label: str, value: Any) -> None:
        cells = [_ratio(value(b), value(a)) for a, b in zip(scales, scales[1:], strict=False)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("input data (bulk observations)", lambda s: s["inputs"]["bulk_observations"])
    row("input data (large Socrata rows)", lambda s: s["inputs"]["large_socrata_rows"])
    row("catalog (series + datasets)", lambda s: s["inputs"]["api_series"] + s["inputs"]["ordinary_socrata_datasets"])
    row("cost per run", lambda s: s["first_run"]["cost_usd"]["total"])
    row("cost per unchanged run", lambda s: s["unchanged_run"]["cost_usd"]["total"])
    row("Lambda GB-s", lambda s: s["first_run"]["counts"]["gb_seconds"])
    row("S3 requests", lambda s: s["first_run"]["counts"]["s3_tier1"] + s["first_run"]["counts"]["s3_tier2"])
    row("invocations", lambda s: s["first_run"]["counts"]["lambda_requests"])
    for logical in FUNCTIONS:
        row(f"{SHORT[logical]} billed s", lambda s, lg=logical: s["first_run"]["stages"][lg].get("duration_s", 0))
    for logical in FUNCTIONS:
        row(f"{SHORT[logical]} CPU s", lambda s, lg=logical: s["first_run"]["stages"][lg].get("cpu_s", 0))
    for logical in FUNCTIONS:
        row(f"{SHORT[logical]} peak MB", lambda s, lg=logical: s["first_run"]["stages"][lg].get("peak_rss_mb", 0))
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [f"## make bench-scale (prices: {results['prices_as_of']})", ""]
    lines += stage_table(results, "first_run") + [""]
    lines += stage_table(results, "unchanged_run") + [""]
    lines += cost_table(results) + [""]
    lines += growth_table(results) + [""]
    for scale in results["scales"]:
        first = scale["first_run"]
        lines.append(
            f"- {scale['scale']}x: inputs {scale['inputs']}; large dataset paged in "
            f"{first['large_dataset_pages']} pages over "
            f"{first['stages']['ExtractorFunction'].get('invocations', 0)} extractor invocations; "
            f"dead letters: {first['dead_letters'] or 'none'} / {scale['unchanged_run']['dead_letters'] or 'none'}; "
            f"lake objects {scale['lake_objects']:,}; "
            f"total {first['elapsed_s'] + scale['unchanged_run']['elapsed_s']:.0f} s"
        )
        large = scale.get("large_dataset_landing")
        if large:
            proof = large["proof"]
            lines.append(
                f"  - the large dataset landed {large['records']:,} rows ({large['landed_mb']:,} MB) in "
                f"{large['data_parts']} parts over {proof.get('invocations', 1)} extractor invocations; counted "
                f"{proof.get('count_before')} before and {proof.get('count_after')} after paging, "
                f"{proof.get('duplicate_ids')} repeated :id, {proof.get('rows_without_id')} rows without one"
            )
    lines.append(f"\ntotal {results.get('total_s', 0):.0f} s")
    return "\n".join(lines)
