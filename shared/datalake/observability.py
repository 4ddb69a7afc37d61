"""Logger, Metrics and Tracer, created once per process. Other modules use ``Logger(child=True)``.

Secrets never reach a log line: the formatter redacts known secret values (registered by the code that reads
them from SSM) and anything shaped like a registration key or app token.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

METRICS_NAMESPACE = "OpenDataPipeline"

_SECRET_VALUES: set[str] = set()
_SECRET_FIELDS = re.compile(r"(registrationkey|registration_key|app_?token|x-app-token|api_?key|webhook)", re.I)
REDACTED = "***redacted***"


_SECRET_PATTERN: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret value so that no log line ever prints it (in any letter case: a source may echo it)."""
    global _SECRET_PATTERN  # noqa: PLW0603 - one process-wide registry, rebuilt when a secret is added
    if value and len(value) >= 6 and value not in _SECRET_VALUES:
        _SECRET_VALUES.add(value)
        alternatives = sorted((re.escape(s) for s in _SECRET_VALUES), key=len, reverse=True)
        _SECRET_PATTERN = re.compile("|".join(alternatives), re.IGNORECASE)


def redact(text: str) -> str:
    if _SECRET_PATTERN is None:
        return text
    return _SECRET_PATTERN.sub(REDACTED, text)


def _scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_FIELDS.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with secrets scrubbed from every field before serialisation."""

    def serialize(self, log: dict[str, Any]) -> str:
        return redact(super().serialize(_scrub(log)))


class _RedactingStdlibFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRET_VALUES:
            record.msg = redact(str(record.msg))
            if record.args:
                record.args = tuple(_scrub(a) for a in record.args) if isinstance(record.args, tuple) else record.args
        return True


logger = Logger(logger_formatter=RedactingFormatter(), utc=True)
logger.addFilter(_RedactingStdlibFilter())
metrics = Metrics(namespace=METRICS_NAMESPACE)
tracer = Tracer()
