"""Delivery: the alerts topic (email), the optional chat webhook, and the de-duplication of repeats.

A notice is claimed before it is sent (``ALERT#{fingerprint}`` / ``SENT``, TTL ``expires_at``), and each channel is
marked once it has the notice. So a retried record sends only what did not go out, a duplicate delivery sends
nothing, and a repeat of the same failure within the window is counted rather than sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.observability import register_secret
from datalake.parameters import ParameterError, SecureParameters
from datalake.state import ConditionFailed, StateError, Table, from_item, to_item
from notifier.domain.notice import Notice, fit_message

logger = Logger(child=True)

Channel = Literal["email", "webhook"]
WEBHOOK_TIMEOUT_S = 5
# A claim whose delivery has not finished after this long is taken over (that delivery died and will not retry,
# e.g. a manual invoke); longer than any retry of a record (NotifyQueue visibility timeout: 180 s).
CLAIM_LEASE = timedelta(minutes=15)
WEBHOOK_CACHE_S = 300


class DeliveryError(RuntimeError):
    """A channel refused the notice; the record fails and retries (channels already served are not resent)."""


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a notice: send it (minus the channels already served), or not at all."""

    send: bool
    channels_done: frozenset[str] = frozenset()
    suppressed_before: int = 0  # repeats counted in the previous window, told with the next notice


class DeliveryGuard(Table):
    """Claims of notices in the state table; errors become StateError (the record fails and retries)."""

    def _key(self, fingerprint: str) -> dict[str, Any]:
        return to_item({"pk": f"ALERT#{fingerprint}", "sk": "SENT"})

    def claim(self, fingerprint: str, delivery_id: str, now: datetime, window: timedelta) -> Claim:
        """Claim a notice for one delivery (an SNS MessageId, or the sweep).

        Returns
        -------
        Claim(send=True) for a first notice, for the retry of the delivery that claimed it, or for a claim left
        unfinished for longer than the lease (its delivery died: the channels it served are kept); Claim(send=False)
        for a repeat within the window (counted on the item).

        Raises
        ------
        StateError
            When the state table cannot be read or written.
        """
        for _ in range(3):
            item = self._get(fingerprint)
            live = item is not None and int(item.get("expires_at", 0)) > now.timestamp()
            if live and item["claimed_by"] == delivery_id:
                return Claim(True, frozenset(item.get("channels") or ()), int(item.get("suppressed_before", 0)))
            if live and not item.get("complete") and _older_than(item.get("claimed_at"), now - CLAIM_LEASE):
                if self._take_over(fingerprint, item, delivery_id, now):
                    return Claim(True, frozenset(item.get("channels") or ()), int(item.get("suppressed_before", 0)))
                continue
            if live:
                self._update(fingerprint, "ADD repeats :one", {":one": {"N": "1"}})
                return Claim(False)
            suppressed = int(item.get("repeats", 0)) if item else 0
            values = {
                "pk": f"ALERT#{fingerprint}",
                "sk": "SENT",
                "claimed_by": delivery_id,
                "claimed_at": now.isoformat(),
                "expires_at": int((now + window).timestamp()),
                "repeats": 0,
                "suppressed_before": suppressed,
            }
            condition = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if item is None
                else {
                    "ConditionExpression": "expires_at = :old",
                    "ExpressionAttributeValues": {":old": {"N": str(int(item.get("expires_at", 0)))}},
                }
            )
            try:
                self.call("put_item", f"cannot claim alert {fingerprint}", Item=to_item(values), **condition)
            except ConditionFailed:
                continue  # another delivery claimed it first: look again
            return Claim(True, frozenset(), suppressed)
        raise StateError(f"alert {fingerprint} kept changing while it was claimed")

    def _take_over(self, fingerprint: str, item: dict[str, Any], delivery_id: str, now: datetime) -> bool:
        try:
            self.call(
                "update_item",
                f"cannot take over alert {fingerprint}",
                Key=self._key(fingerprint),
                UpdateExpression="SET claimed_by = :me, claimed_at = :now",
                ConditionExpression="claimed_by = :old AND claimed_at = :old_at",
                ExpressionAttributeValues=to_item(
                    {
                        ":me": delivery_id,
                        ":now": now.isoformat(),
                        ":old": item["claimed_by"],
                        ":old_at": item["claimed_at"],
                    }
                ),
            )
        except ConditionFailed:
            return False
        return True

    def mark(self, fingerprint: str, channel: Channel) -> None:
        self._update(fingerprint, "ADD channels :c", {":c": {"SS": [channel]}})

    def complete(self, fingerprint: str) -> None:
        """Every channel has the notice: from now on another delivery of it is a repeat, never a takeover."""
        self._update(fingerprint, "SET complete = :t", {":t": {"BOOL": True}})

    def _get(self, fingerprint: str) -> dict[str, Any] | None:
        response = self.call(
            "get_item", f"cannot read alert {fingerprint}", Key=self._key(fingerprint), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def _update(self, fingerprint: str, expression: str, values: dict[str, Any]) -> None:
        self.call(
            "update_item",
            f"cannot update alert {fingerprint}",
            Key=self._key(fingerprint),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )


@dataclass
class AlertsTopic:
    """The alerts topic: its email subscription is what people read (and, locally, the printed inbox)."""

    topic_arn: str
    sns: Any | None = None

    def send(self, notice: Notice) -> str:
        sns = self.sns or client("sns")
        try:
            response = sns.publish(
                TopicArn=self.topic_arn,
                Subject=notice.subject,
                Message=fit_message(notice.body),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": notice.kind.value}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryError(f"could not publish the {notice.kind.value} notice to the alerts topic: {exc}") from exc
        return response["MessageId"]


@dataclass
class Webhook:
    """An optional chat webhook (Slack-style ``{"text": ...}``) whose URL is a secret in SSM.

    An absent parameter means no webhook. The URL is registered as a secret, so no log line prints it.
    """

    parameter_name: str | None
    ssm: Any | None = None
    post: Any = None  # (url, payload bytes) -> None; tests pass a fake
    parameters: SecureParameters | None = field(default=None, repr=False)

    def url(self) -> str | None:
        if not self.parameter_name:
            return None
        if self.parameters is None:
            self.parameters = SecureParameters(self.ssm, max_age=WEBHOOK_CACHE_S)
        try:
            value = self.parameters.get(self.parameter_name)
        except ParameterError as exc:
            raise DeliveryError(f"cannot read the webhook parameter {self.parameter_name}: {exc.__cause__}") from exc
        value = (value or "").strip() or None
        register_secret(value)
        return value

    def send(self, notice: Notice) -> bool:
        """Post the notice; False when no webhook is configured.

        Raises
        ------
        DeliveryError
            When the webhook answers with an error or cannot be reached (the message never names the URL).
        """
        url = self.url()
        if url is None:
            return False
        payload = json.dumps({"text": f"*{notice.subject}*\n```\n{notice.body.rstrip()}\n```"}).encode()
        (self.post or _post_json)(url, payload)
        return True


def _older_than(stamp: str | None, moment: datetime) -> bool:
    return stamp is not None and datetime.fromisoformat(stamp) < moment


def _post_json(url: str, payload: bytes) -> None:
    import urllib.error  # only when a webhook is configured: keeps http.client out of the cold start
    import urllib.request

    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise DeliveryError("the webhook URL must be https")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"the webhook answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"the webhook could not be reached: {type(reason).__name__}") from exc
