"""TransformerFunction: S3 notifications of landing manifests (TransformQueue) become staged Parquet.

Powertools wiring only. pyarrow and the staging code load on the first landing, not at cold start.

A direct invoke ``{"reprocess": ["landing/.../x.manifest.json", ...]}`` stages those landings again, past the
idempotency record of their notification: for a landing quarantined before a fix of the transformer was deployed
(docs/operations.md, "Dataset quarantined"). ``events/transformer_reprocess.json`` is a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from datalake.batch import BatchProcessor, EventType, process_partial_response
from datalake.idempotency import idempotency_config, persistence_layer
from datalake.layout import is_manifest_key, parse_landing_key
from datalake.observability import logger, metrics, tracer
from datalake.records import S3NotificationRecord, S3TestEvent
from datalake.settings import TransformerSettings, settings_for
from transformer.landing import LandingRef, landing_from_notification

if TYPE_CHECKING:
    from transformer.service import Outcome, TransformerService

settings = settings_for(TransformerSettings)
processor = BatchProcessor(event_type=EventType.SQS, model=S3NotificationRecord)
idempotency = idempotency_config(event_key="idempotency_key")


@cache
def service() -> TransformerService:
    """The staging service and its adapters, built once per container on first use."""
    from datalake.arrow import skip_pandas_probe

    skip_pandas_probe()  # before the staging code, which hands pyarrow Python values, is imported
    from transformer.service import build_service

    return build_service(settings)


def emit_metrics(outcome: Outcome) -> None:
    counts = outcome.counts
    metrics.add_metric(name="RowsStaged", unit=MetricUnit.Count, value=counts["rows_written"])
    metrics.add_metric(name="RowsQuarantined", unit=MetricUnit.Count, value=counts["rows_quarantined"])
    metrics.add_metric(name="RowsRevised", unit=MetricUnit.Count, value=counts["rows_revised"])
    metrics.add_metric(name="PayloadsQuarantined", unit=MetricUnit.Count, value=len(outcome.failures))
    metrics.add_metric(name="LandingsStaged", unit=MetricUnit.Count, value=1 if outcome.units_staged else 0)


def stage_landing_once(landing: LandingRef) -> dict[str, Any]:
    """Stage one landing, once per ``bucket/key#etag``.

    Returns
    -------
    The outcome: status (staged, partial, quarantined, stale), counts, staged and quarantine keys.

    Raises
    ------
    datalake.lake.LakeError, datalake.state.StateError, datalake.events.PublishError,
    transformer.adapters.GlueError, transformer.adapters.PartitionBusy
        Transient: the message is retried, then dead-lettered.
    transformer.service.InvalidManifest
        The notified object is not a valid manifest for its key.
    """
    staging = service()
    manifest = staging.read_manifest(landing)
    logger.set_correlation_id(manifest.run_id)
    logger.append_keys(run_id=manifest.run_id, source=manifest.source.value, dataset=manifest.dataset)
    outcome = staging.stage(landing, manifest)
    emit_metrics(outcome)
    logger.info("landing handled", extra={"status": outcome.status, "manifest_key": landing.key, **outcome.counts})
    return outcome.as_dict()


@cache
def idempotent_stage() -> Callable[..., dict[str, Any]]:
    """``stage_landing_once`` behind Powertools idempotency; the DynamoDB client is made on first use, not at import."""
    return idempotent_function(
        data_keyword_argument="landing",
        config=idempotency,
        persistence_store=persistence_layer(settings.idempotency_table),
    )(stage_landing_once)


def stage_landing(landing: LandingRef) -> dict[str, Any]:
    return idempotent_stage()(landing=landing)


@tracer.capture_method
def record_handler(record: S3NotificationRecord) -> None:
    """One TransformQueue message: the s3:TestEvent is skipped; each S3 record names one landing manifest."""
    body = record.body
    if isinstance(body, S3TestEvent):
        logger.info("skipping s3:TestEvent", extra={"bucket": body.Bucket})
        return
    for s3_record in body.Records:
        stage_landing(landing=landing_from_notification(s3_record, settings.lake_bucket))


class ReprocessRequest(BaseModel):
    """Landings to stage again, by the keys of their manifests in the lake bucket."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    reprocess: list[str] = Field(min_length=1, max_length=100)

    @field_validator("reprocess")
    @classmethod
    def _landing_manifests(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not is_manifest_key(key):
                raise ValueError(f"{key!r} is not a landing manifest key (landing/.../*.manifest.json)")
            parse_landing_key(key)  # a known source and a safe dataset id, or ValueError
        return keys


def reprocess(request: ReprocessRequest) -> dict[str, Any]:
    """Stage each named landing again, as its notification would, but without the idempotency record.

    Each landing's outcome is reported; one that is missing or fails does not stop the others.
    """
    from datalake.lake import LakeStore

    lake = LakeStore(settings.lake_bucket)
    results = []
    for key in request.reprocess:
        info = lake.head(key)
        if info is None:
            results.append({"manifest_key": key, "status": "missing"})
            continue
        landing = LandingRef(bucket=settings.lake_bucket, key=key, etag=info.etag, version_id=info.version_id)
        try:
            results.append({"manifest_key": key, **stage_landing_once(landing)})
        except Exception as exc:  # noqa: BLE001 - reported to the operator, with the others' outcomes
            logger.exception("reprocess failed", extra={"manifest_key": key})
            results.append({"manifest_key": key, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    logger.info("reprocessed", extra={"landings": len(results), "statuses": [r["status"] for r in results]})
    return {"reprocessed": results}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch of S3 notifications -> partial batch response (only failed records are retried); or a direct
    reprocess invoke (see the module docstring) -> each landing's outcome."""
    if "reprocess" in event:
        return reprocess(ReprocessRequest.model_validate(event))
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
