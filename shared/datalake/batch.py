"""Powertools' batch utility (``BatchProcessor``, ``EventType``, ``process_partial_response``), imported without
loading every Powertools parser model.

``aws_lambda_powertools.utilities.batch.types`` imports all of Powertools' parser models (some forty pydantic
modules, about 0.2 s of a cold start, measured by ``make bench``) whenever pydantic is already imported, only to
build a type alias that the batch code uses in annotations. Our processors pass their own models (or none), so that
module is imported here while pydantic is out of sight, and takes its plain-annotation branch. Nothing else imports
pydantic meanwhile; the same module object is put back at once.
"""

from __future__ import annotations

import sys

_TYPES = "aws_lambda_powertools.utilities.batch.types"

if _TYPES not in sys.modules:
    _pydantic = sys.modules.pop("pydantic", None)
    try:
        import aws_lambda_powertools.utilities.batch.types  # noqa: F401
    finally:
        if _pydantic is not None:
            sys.modules["pydantic"] = _pydantic

from aws_lambda_powertools.utilities.batch import (  # noqa: E402
    BatchProcessor,
    EventType,
    process_partial_response,
)

__all__ = ["BatchProcessor", "EventType", "process_partial_response"]
