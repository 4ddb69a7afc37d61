"""Settings: one pydantic model per function, read from the environment once, at cold start.

A missing resource name fails loudly at start-up. There are no silent defaults for resources; defaults exist
only for tunables and for the public source endpoints.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SettingsError(RuntimeError):
    """The function's environment is incomplete or malformed."""


class BaseSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)  # built only for the function using it

    stage: str = Field(alias="STAGE", pattern=r"^(dev|prod|local)$")
    service: str = Field(alias="POWERTOOLS_SERVICE_NAME")
    aws_region: str = Field(alias="AWS_REGION")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")


class StorageSettings(BaseSettings):
    lake_bucket: str = Field(alias="LAKE_BUCKET", min_length=3)
    state_table: str = Field(alias="STATE_TABLE", min_length=3)
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=3)
    pipeline_topic_arn: str = Field(alias="PIPELINE_TOPIC_ARN", pattern=r"^arn:aws[a-z\-]*:sns:")


class SchedulerSettings(BaseSettings):
    extract_queue_url: str = Field(alias="EXTRACT_QUEUE_URL", min_length=8)
    state_table: str = Field(alias="STATE_TABLE", min_length=3)  # run id claims
    pipeline_topic_arn: str = Field(alias="PIPELINE_TOPIC_ARN", pattern=r"^arn:aws[a-z\-]*:sns:")
    daily_window_years: int = Field(default=3, alias="DAILY_WINDOW_YEARS", ge=1, le=20)


class ExtractorSettings(StorageSettings):
    extract_dlq_url: str = Field(alias="EXTRACT_DLQ_URL", min_length=8)
    contact_email: str = Field(alias="CONTACT_EMAIL", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    bls_api_key_param: str = Field(alias="BLS_API_KEY_PARAM", min_length=1)
    socrata_app_token_param: str = Field(alias="SOCRATA_APP_TOKEN_PARAM", min_length=1)
    bls_api_url: str = Field(default="https://api.bls.gov/publicAPI/v2/timeseries/data/", alias="BLS_API_URL")
    bls_bulk_url: str = Field(default="https://download.bls.gov/pub/time.series/", alias="BLS_BULK_URL")
    datausa_url: str = Field(default="https://honolulu-api.datausa.io/tesseract/data.jsonrecords", alias="DATAUSA_URL")
    socrata_url: str = Field(default="https://analisi.transparenciacatalunya.cat/", alias="SOCRATA_URL")
    daily_window_years: int = Field(default=3, alias="DAILY_WINDOW_YEARS", ge=1, le=20)
    socrata_page_size: int = Field(default=50_000, alias="SOCRATA_PAGE_SIZE", ge=1, le=50_000)
    # A paged extraction hands over to a continuation message before the invocation's time runs out; this also
    # caps the pages one invocation fetches (0: only the time budget decides).
    socrata_pages_per_invocation: int = Field(default=0, alias="SOCRATA_PAGES_PER_INVOCATION", ge=0)
    # Continuations and postponed records go back to the ExtractQueue.
    extract_queue_url: str = Field(alias="EXTRACT_QUEUE_URL", min_length=8)
    max_payload_bytes: int = Field(default=512 * 1024 * 1024, alias="MAX_PAYLOAD_BYTES", ge=1024)
    # The ExtractQueue's maxReceiveCount (the template sets both from one value; a test holds them equal): on
    # that receive a transient failure is dead-lettered by the extractor itself, with its reason.
    extract_max_receive_count: int = Field(default=8, alias="EXTRACT_MAX_RECEIVE_COUNT", ge=1, le=1000)


class TransformerSettings(StorageSettings):
    glue_database: str | None = Field(default=None, alias="GLUE_DATABASE")


class ModelerSettings(StorageSettings):
    glue_database: str | None = Field(default=None, alias="GLUE_DATABASE")


class NotifierSettings(BaseSettings):
    state_table: str = Field(alias="STATE_TABLE", min_length=3)
    alerts_topic_arn: str = Field(alias="ALERTS_TOPIC_ARN", pattern=r"^arn:aws[a-z\-]*:sns:")
    webhook_url_param: str | None = Field(default=None, alias="WEBHOOK_URL_PARAM")
    dedupe_window_minutes: int = Field(default=60, alias="DEDUPE_WINDOW_MINUTES", ge=0)
    lake_bucket: str | None = Field(default=None, alias="LAKE_BUCKET")
    # ${AWS::StackName}-${Stage}: every resource name (and so every console link) derives from it. When absent it
    # is read off the alerts topic, which the template names "${AWS::StackName}-${Stage}-alerts".
    resource_prefix: str | None = Field(
        default=None, alias="RESOURCE_PREFIX", pattern=r"^[A-Za-z0-9][A-Za-z0-9\-]{1,100}$"
    )
    # The functions' log groups are "<this>/<function>" (the template's log groups); absent: /aws/lambda/<name>.
    log_group_prefix: str | None = Field(default=None, alias="LOG_GROUP_PREFIX", pattern=r"^/[A-Za-z0-9_\-./]+$")
    # A run that has not settled this long after its first event is closed with what is known (see the runbook).
    run_settle_hours: float = Field(default=30, alias="RUN_SETTLE_HOURS", gt=0, le=24 * 14)

    @model_validator(mode="after")
    def _prefix_is_known(self) -> NotifierSettings:
        if self.resource_prefix is None:
            topic = self.alerts_topic_arn.rsplit(":", 1)[-1]
            if not topic.endswith("-alerts") or len(topic) <= len("-alerts"):
                raise ValueError(f"RESOURCE_PREFIX is not set and the alerts topic {topic!r} is not '<prefix>-alerts'")
            object.__setattr__(self, "resource_prefix", topic.removesuffix("-alerts"))
        return self


S = TypeVar("S", bound=BaseSettings)


def load_settings(model: type[S], environ: dict[str, str] | None = None) -> S:
    """Validate the environment against a settings model.

    Raises
    ------
    SettingsError
        Naming every missing or malformed variable, so a misconfigured deploy fails at cold start.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        return model.model_validate(env)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise SettingsError(f"{model.__name__} is invalid: {problems}") from exc


@cache
def settings_for(model: type[S]) -> S:
    """The process-wide settings of a function, validated once."""
    return load_settings(model)
