"""The fault table: rows recorded by any test of the session (``record_property("fault_matrix", {...})``), printed
at the end of the session and written to ``bench/out/fault-matrix-{fast,chaos}.md``.

The hook lives in the root conftest, which pytest loads in every process: with ``pytest -n`` (xdist) the rows
reach the controller in the workers' reports, and only the controller prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localrun.template import ROOT

REPORT_DIR = ROOT / "bench" / "out"
COLUMNS = ("fault", "target", "scope", "attempts", "faulted run", "recovery", "after recovery", "lost", "converged")


def matrix_rows(terminalreporter: Any) -> list[dict[str, Any]]:
    """The rows tests recorded, from every test's report (this hook sees the whole session, not just tests/e2e)."""
    rows = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            for name, value in report.user_properties:
                if name == "fault_matrix":
                    rows.append({**value, "test": report.nodeid, "passed": report.passed})
    return rows  # in the order they ran


def render(rows: list[dict[str, Any]]) -> list[str]:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    header = " | ".join(c.ljust(widths[c]) for c in COLUMNS)
    lines = [header, "-|-".join("-" * widths[c] for c in COLUMNS)]
    lines += [" | ".join(str(r.get(c, "")).ljust(widths[c]) for c in COLUMNS) for r in rows]
    lost = sum(int(r.get("lost", 0)) for r in rows)
    failed = [r["test"] for r in rows if not r["passed"]]
    lines.append(f"{len(rows)} faults, {lost} lost" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return lines


def print_table(terminalreporter: Any) -> None:
    rows = matrix_rows(terminalreporter)
    if not rows:
        return
    lines = render(rows)
    terminalreporter.section("fault matrix: every fault, its attempts and where everything ended")
    for line in lines:
        terminalreporter.write_line(line)
    kind = "chaos" if any(r.get("chaos") for r in rows) else "fast"
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"fault-matrix-{kind}.md"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(f"# Fault matrix ({kind}), {stamp}\n\n" + "\n".join(lines) + "\n")
    terminalreporter.write_line(f"(written to {path.relative_to(ROOT)})")
