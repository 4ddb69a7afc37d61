"""ModelerFunction: a batch of ``dataset.staged`` events (PipelineTopic -> ModelQueue) becomes one mart rebuild.

Powertools wiring only: the batch is parsed and served in ``modeler.invocations`` (what fails alone, what is
retried, what goes back to the queue behind the rebuild lease), with its ports composed once per container.
"""

from __future__ import annotations

import datalake.startup  # noqa: F401 - first: the shared libraries loaded, then frozen out of the collector's walks

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.batch import BatchProcessor, EventType
from datalake.contracts import DatasetStaged
from datalake.observability import logger, metrics, tracer
from datalake.records import SnsEnvelopeRecord
from datalake.settings import ModelerSettings, settings_for
from datalake.wiring import Composed
from modeler.invocations import Ports, compose, forget_batch, model_batch, staged_event

settings = settings_for(ModelerSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=SnsEnvelopeRecord)
ports: Composed[Ports] = Composed(lambda: compose(settings))


@tracer.capture_method
def record_handler(record: SnsEnvelopeRecord) -> DatasetStaged:
    return staged_event(record)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A ModelQueue batch (up to 100 records, gathered over 60 s) -> ``{"batchItemFailures": [...]}``: the records
    that did not parse. Raises when the rebuild cannot finish, so every record is retried (a held lease is not such
    a case: the batch goes back to the queue as new messages, and the invocation succeeds)."""
    forget_batch()
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        results = processor.process()
    staged = [result for status, result, _ in results if status == "success"]
    if staged:
        failed = {f["itemIdentifier"] for f in processor.response()["batchItemFailures"]}
        waiting = [r for r in event["Records"] if r["messageId"] not in failed]
        model_batch(ports(), staged, waiting, context.get_remaining_time_in_millis())
    return processor.response()
