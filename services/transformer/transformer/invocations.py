"""The transformer's two kinds of invocation, handed to the staging service; their log keys and metrics.

- a TransformQueue record: the S3 notification of a landing manifest (or S3's ``s3:TestEvent``, skipped);
- a direct ``{"reprocess": ["landing/.../x.manifest.json", ...]}``: stage those landings again, past the
  idempotency record of their notification, for a landing quarantined before a fix of the transformer was deployed
  (docs/operations.md, "Dataset quarantined"). ``events/transformer_reprocess.json`` is a sample.

Light on purpose: the handler imports this module at cold start; pyarrow and the staging code load with the
service (``compose``), on the first landing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, field_validator

from datalake.layout import is_manifest_key, parse_landing_key
from datalake.observability import logger, metrics
from datalake.records import S3NotificationRecord, S3TestEvent
from transformer.landing import LandingRef, landing_from_notification

if TYPE_CHECKING:
    from datalake.settings import TransformerSettings
    from transformer.service import Outcome, TransformerService


def compose(settings: TransformerSettings) -> TransformerService:
    """The staging service wired to AWS. pyarrow's pandas probe is answered first (``datalake.arrow``), before the
    staging code, which hands pyarrow Python values, is imported."""
    from datalake.arrow import skip_pandas_probe

    skip_pandas_probe()
    from transformer.service import build_service

    return build_service(settings)


def emit_metrics(outcome: Outcome) -> None:
    counts = outcome.counts
    metrics.add_metric(name="RowsStaged", unit=MetricUnit.Count, value=counts["rows_written"])
    metrics.add_metric(name="RowsQuarantined", unit=MetricUnit.Count, value=counts["rows_quarantined"])
    metrics.add_metric(name="RowsRevised", unit=MetricUnit.Count, value=counts["rows_revised"])
    metrics.add_metric(name="PayloadsQuarantined", unit=MetricUnit.Count, value=len(outcome.failures))
    metrics.add_metric(name="LandingsStaged", unit=MetricUnit.Count, value=1 if outcome.units_staged else 0)


def stage_landing(staging: TransformerService, landing: LandingRef) -> dict[str, Any]:
    """Stage one landing (the handler puts this behind idempotency on ``bucket/key#etag``).

    Returns
    -------
    The outcome: status (staged, partial, quarantined, stale), counts, staged and quarantine keys.

    Raises
    ------
    datalake.lake.LakeError, datalake.state.StateError, datalake.events.PublishError,
    transformer.glue.GlueError, datalake.lease.LeaseBusy
        Transient: the message is retried, then dead-lettered.
    transformer.service.InvalidManifest
        The notified object is not a valid manifest for its key.
    """
    manifest = staging.read_manifest(landing)
    logger.set_correlation_id(manifest.run_id)
    logger.append_keys(run_id=manifest.run_id, source=manifest.source.value, dataset=manifest.dataset)
    outcome = staging.stage(landing, manifest)
    emit_metrics(outcome)
    logger.info("landing handled", extra={"status": outcome.status, "manifest_key": landing.key, **outcome.counts})
    return outcome.as_dict()


def notified_landings(record: S3NotificationRecord, lake_bucket: str) -> list[LandingRef]:
    """The landings one TransformQueue message names: none for the s3:TestEvent, else one per S3 record.

    Raises
    ------
    transformer.landing.UnexpectedNotification
        When a record names anything but a landing manifest created in the lake bucket.
    """
    body = record.body
    if isinstance(body, S3TestEvent):
        logger.info("skipping s3:TestEvent", extra={"bucket": body.Bucket})
        return []
    return [landing_from_notification(s3_record, lake_bucket) for s3_record in body.Records]


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


def reprocess(
    staging: TransformerService,
    request: ReprocessRequest,
    stage: Callable[[TransformerService, LandingRef], dict[str, Any]] = stage_landing,
) -> dict[str, Any]:
    """Stage each named landing again, as its notification would, but without the idempotency record.

    Each landing's outcome is reported; one that is missing or fails does not stop the others.

    Parameters
    ----------
    staging: the service; it finds each manifest's current version through its landing port.
    request: the manifest keys.

    Returns
    -------
    ``{"reprocessed": [{"manifest_key", "status", ...the outcome or the error}]}``, in the request's order.
    """
    results = []
    for key in request.reprocess:
        try:
            landing = staging.landing_at(key)
            if landing is None:
                results.append({"manifest_key": key, "status": "missing"})
                continue
            results.append({"manifest_key": key, **stage(staging, landing)})
        except Exception as exc:  # noqa: BLE001 - reported to the operator, with the others' outcomes
            logger.exception("reprocess failed", extra={"manifest_key": key})
            results.append({"manifest_key": key, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
    logger.info("reprocessed", extra={"landings": len(results), "statuses": [r["status"] for r in results]})
    return {"reprocessed": results}
