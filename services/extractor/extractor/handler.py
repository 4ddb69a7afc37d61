"""ExtractorFunction: each ExtractRequest of an SQS batch becomes a raw landing in S3, or a recorded failure.

Powertools wiring only: ``extractor.service`` serves the batch; a record that raises meets ``extractor.failures``.
"""

from __future__ import annotations

import datalake.startup  # noqa: F401 - first: the shared libraries loaded, then frozen out of the collector's walks

# isort: split
from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.batch import process_partial_response
from datalake.contracts import ExtractRequest
from datalake.idempotency import idempotency_config
from datalake.observability import logger, metrics, tracer
from datalake.settings import ExtractorSettings, settings_for
from datalake.wiring import Composed
from extractor.budget import time_budget
from extractor.failures import FailurePolicy
from extractor.service import Extractor, Invocation, build_extractor, request_of
from extractor.telemetry import telemetry

settings = settings_for(ExtractorSettings)
# A continuation of a paged extraction is a unit of work of its own: its key adds the checkpoint segment it resumes.
IDEMPOTENCY_KEY = (
    "continuation && join('#', [run_id, source, dataset, to_string(continuation.segment)])"
    " || join('#', [run_id, source, dataset])"
)
config = idempotency_config(IDEMPOTENCY_KEY)


def extract(request: ExtractRequest, invocation: Invocation, final: bool = False) -> dict[str, Any]:
    """The unit of work, idempotent per ``IDEMPOTENCY_KEY``: only outcomes are remembered, never failures, so a
    message redriven from the DLQ once its cause is fixed runs again. ``final``: the request's last receive."""
    return invocation.extract(request, keep_bad=final)


extractor: Composed[Extractor] = Composed(lambda: build_extractor(settings, config, extract))


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, invocation: Invocation) -> dict[str, Any]:
    request = request_of(record)
    logger.set_correlation_id(request.run_id)
    logger.append_keys(source=request.source.value, dataset=request.dataset)  # FailurePolicy removes them
    return invocation.handle(record, request)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An ExtractQueue batch (up to 50 records) -> ``{"batchItemFailures": [...]}``: the records to redeliver."""
    config.register_lambda_context(context)
    metrics.add_metric(name="ExtractRequestsReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    invocation = extractor().invocation(event)
    logger.set_correlation_id(invocation.run_ids)  # the logs before any record (the BLS prefetch) carry it too
    try:
        with time_budget(context.get_remaining_time_in_millis()):
            invocation.prefetch()
            return process_partial_response(
                event=event,
                record_handler=partial(record_handler, invocation=invocation),
                processor=FailurePolicy(invocation, invocation.settings.extract_max_receive_count),
                context=context,
            )
    finally:
        telemetry.flush(settings.service)
