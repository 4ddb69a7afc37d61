"""NotifierFunction: NotifyQueue (pipeline events and alarms, SNS-in-SQS) becomes messages for people.

Powertools wiring only: the invocations are parsed in ``notifier.invocations``, served by ``notifier.service``.
"""

from __future__ import annotations

import datalake.startup  # noqa: F401 - first: the shared libraries loaded, then frozen out of the collector's walks

# isort: split
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.batch import BatchProcessor, EventType, process_partial_response
from datalake.observability import logger, metrics, tracer
from datalake.records import SnsEnvelopeRecord
from datalake.settings import NotifierSettings, settings_for
from datalake.wiring import Composed
from notifier.invocations import forget_run, handle_direct, handle_record
from notifier.service import Notifier, build_notifier

settings = settings_for(NotifierSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=SnsEnvelopeRecord)
notifier: Composed[Notifier] = Composed(lambda: build_notifier(settings))


@tracer.capture_method
def record_handler(record: SnsEnvelopeRecord) -> None:
    handle_record(notifier(), record, settings.service)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A NotifyQueue batch -> ``{"batchItemFailures": [...]}``; the housekeeping schedule or a manual
    ``{"action": "settle", "run_id"?: ...}`` -> ``{"summaries": [...]}`` (raises ``BadNotifierRequest`` otherwise)."""
    forget_run()
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    settle_after = timedelta(hours=settings.run_settle_hours)
    return handle_direct(notifier(), event, context.aws_request_id, settle_after, settings.service)
