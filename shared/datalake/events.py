"""Publishing pipeline events on the PipelineTopic, with the attributes subscription filters match on."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.contracts import PipelineEvent


class PublishError(RuntimeError):
    """An event could not be published; the caller's unit of work must fail and retry."""


def event_attributes(event: PipelineEvent) -> dict[str, dict[str, str]]:
    attributes = {
        "event_type": {"DataType": "String", "StringValue": event.event_type.value},
        "run_id": {"DataType": "String", "StringValue": event.run_id},
    }
    if event.source is not None:
        attributes["source"] = {"DataType": "String", "StringValue": event.source.value}
    return attributes


def publish_event(event: PipelineEvent, topic_arn: str, sns: Any | None = None) -> str:
    """Publish one event; returns the SNS message id.

    Raises
    ------
    PublishError
        When SNS refuses or cannot be reached.
    """
    sns = sns or client("sns")
    try:
        response = sns.publish(
            TopicArn=topic_arn,
            Message=event.model_dump_json(),
            MessageAttributes=event_attributes(event),
        )
    except (ClientError, BotoCoreError) as exc:
        raise PublishError(f"could not publish {event.event_type.value} for run {event.run_id}: {exc}") from exc
    return response["MessageId"]
