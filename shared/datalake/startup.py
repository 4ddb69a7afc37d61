"""What every handler imports first: the libraries all of them need, loaded once, then kept out of the garbage
collector's walks. It makes a cold start about 40 ms shorter and changes nothing a handler does.

**The collector.** boto3, Powertools and pydantic leave some 80,000 objects behind them, all of which live as long as
the process. CPython's collector walks every tracked object on each full collection, and the allocations of the
imports that follow (our modules, pydantic building its validators) set off several of those: measured with
``make bench``, they made a third of a light handler's import time above the floor. ``gc.freeze()`` moves the objects
alive at that moment to a permanent generation that no collection walks; the collector keeps working on everything
made afterwards. What it freezes is module state, which is never freed anyway (a few cycles waiting to be collected
at that moment are kept too: a few kilobytes, once).

**Powertools' event classes.** ``aws_lambda_powertools.utilities.data_classes``'s ``__init__`` imports all of its
thirty-odd event classes (API Gateway, AppSync, Bedrock, ...), about 10 ms, because the batch utility imports
``data_classes.sqs_event``, which asks the package for ``S3Event``. The package is registered here without running its
``__init__``: a name asked of it loads the submodule that defines it, and any name not in ``_LAZY`` runs the real
``__init__`` once, so a caller always gets what Powertools would have given it.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
from types import ModuleType

import boto3  # noqa: F401 - loaded before the freeze, like the rest of this block
from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: F401
from pydantic import BaseModel  # noqa: F401

DATA_CLASSES = "aws_lambda_powertools.utilities.data_classes"
# Names the package's own modules and ours ask of it, and the submodule defining each.
_LAZY = {
    "S3Event": "s3_event",
    "S3EventBridgeNotificationEvent": "s3_event",
    "SNSEvent": "sns_event",
    "SQSEvent": "sqs_event",
    "SQSRecord": "sqs_event",
    "EventBridgeEvent": "event_bridge_event",
    "DynamoDBStreamEvent": "dynamo_db_stream_event",
    "KinesisStreamEvent": "kinesis_stream_event",
    "KafkaEvent": "kafka_event",
    "event_source": "event_source",
}


def _lazy_package(name: str, lazy: dict[str, str]) -> ModuleType | None:
    """Register package ``name`` without running its ``__init__``; ``None`` when it is already imported or absent."""
    if name in sys.modules:
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return None
    package = importlib.util.module_from_spec(spec)
    state = {"initialised": False}

    def __getattr__(attribute: str) -> object:  # noqa: N807 - a module's attribute hook (PEP 562)
        submodule = lazy.get(attribute)
        if submodule is not None:
            value = getattr(importlib.import_module(f"{name}.{submodule}"), attribute)
        elif not state["initialised"] and (attribute == "__all__" or not attribute.startswith("__")):
            state["initialised"] = True  # the real __init__, once: every other name it exports, as Powertools has it
            spec.loader.exec_module(package)
            value = package.__dict__.get(attribute, _MISSING)
        else:
            value = _MISSING
        if value is _MISSING:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        setattr(package, attribute, value)
        return value

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = package
    return package


_MISSING = object()
_lazy_package(DATA_CLASSES, _LAZY)
gc.freeze()
