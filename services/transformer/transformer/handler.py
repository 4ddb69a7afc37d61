"""TransformerFunction: S3 notifications of landing manifests (TransformQueue) become staged Parquet.

Powertools wiring only: the invocations are parsed in ``transformer.invocations`` and served by
``transformer.service``, composed once per container on the first landing (pyarrow does not load at cold start).
"""

from __future__ import annotations

import datalake.startup  # noqa: F401 - first: the shared libraries loaded, then frozen out of the collector's walks

# isort: split
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.batch import BatchProcessor, EventType, process_partial_response
from datalake.idempotency import idempotency_config, persistence_layer
from datalake.observability import logger, metrics, tracer
from datalake.records import S3NotificationRecord
from datalake.settings import TransformerSettings, settings_for
from datalake.wiring import Composed
from transformer.invocations import ReprocessRequest, compose, notified_landings, reprocess, stage_landing
from transformer.landing import LandingRef

if TYPE_CHECKING:
    from transformer.service import TransformerService

settings = settings_for(TransformerSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=S3NotificationRecord)
idempotency = idempotency_config(event_key="idempotency_key")
service: Composed[TransformerService] = Composed(lambda: compose(settings))


def stage_landing_once(landing: LandingRef) -> dict[str, Any]:
    """One landing staged; idempotent on ``bucket/key#etag`` (its records are keyed by this function's name)."""
    return stage_landing(service(), landing)


@cache
def idempotent_stage() -> Callable[..., dict[str, Any]]:
    """``stage_landing_once`` behind Powertools idempotency; the DynamoDB client is made on first use, not at import."""
    return idempotent_function(
        data_keyword_argument="landing",
        config=idempotency,
        persistence_store=persistence_layer(settings.idempotency_table),
    )(stage_landing_once)


@tracer.capture_method
def record_handler(record: S3NotificationRecord) -> None:
    for landing in notified_landings(record, settings.lake_bucket):
        idempotent_stage()(landing=landing)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A TransformQueue batch -> ``{"batchItemFailures": [...]}`` (only failed records are retried); a direct
    ``{"reprocess": [manifest keys]}`` -> ``{"reprocessed": [each landing's outcome]}`` (see ``invocations``)."""
    if "reprocess" in event:
        return reprocess(service(), ReprocessRequest.model_validate(event))
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
