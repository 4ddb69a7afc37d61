"""A full local run (``python -m localrun``) with every handler's AWS calls recorded, in a process of its own.

    python -m checks.iam_run CALLS.json -- --lake-dir DIR [localrun arguments]

Writes the calls as JSON: ``[{"function", "service", "operation", "params"}]`` (parameters that are bytes or
streams are dropped: only names, keys and ARNs matter to IAM).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from checks.iam_eval import CallRecorder


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if isinstance(v, str | int | float | bool | dict | list)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[argv.index("--") + 1 :]
    from localrun import cli
    from localrun.runner import Runner

    recorder = CallRecorder()
    invoke = Runner.invoke

    def attributed_invoke(self: Runner, logical_id: str, event: dict[str, Any]) -> Any:
        with recorder.attributed_to(logical_id):
            return invoke(self, logical_id, event)

    Runner.invoke = attributed_invoke  # type: ignore[method-assign]
    with recorder.recording():
        code = cli.main(args)
    calls = [
        {"function": c.function, "service": c.service, "operation": c.operation, "params": _plain(c.params)}
        for c in recorder.calls
    ]
    out.write_text(json.dumps(calls))
    print(f"{len(calls)} AWS calls by the handlers recorded in {out}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
