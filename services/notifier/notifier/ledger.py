"""The run ledger in the state table, and the notifier's view of source freshness.

  RUN#{run_id}     SUMMARY                      expected datasets, datasets with an outcome, last staging and
                                                model times, summaries sent (the hint that says "maybe settled")
  RUN#{run_id}     EVENT#{ledger key}           one pipeline event per business key (the newest wins)
  RUNS             OPEN#{run_id}                runs with events not yet told in a summary (the sweep's index)
  SOURCE#{source}  SEEN                         the newest staging and "unchanged" confirmation of a source

Every write is idempotent: a duplicate delivery, or the same event published twice, leaves the same items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from datalake.contracts import DatasetStaged, DatasetUnchanged, PipelineEvent, RunStarted, parse_pipeline_event
from datalake.state import ConditionFailed, Table, from_item, to_item
from datalake.state import utc_stamp as stamp
from notifier.domain.notice import dataset_ref
from notifier.domain.runs import LedgerHint, is_model_outcome, ledger_key, terminal_outcome

LEDGER_RETENTION = timedelta(days=90)
OPEN_INDEX_PK = "RUNS"


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


@dataclass(frozen=True)
class OpenRun:
    run_id: str
    first_seen_at: datetime


class RunLedger(Table):
    """The run ledger. Errors become StateError, so the record fails and retries."""

    def _call(self, operation: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return self.call(operation, f"cannot {what} in {self.table_name}", **kwargs)

    def _conditional(self, operation: str, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """A conditional write; None when the condition does not hold (an older or repeated fact)."""
        try:
            return self._call(operation, what, **kwargs)
        except ConditionFailed:
            return None

    # -- recording --------------------------------------------------------------------------------------------
    def record(self, event: PipelineEvent, now: datetime) -> LedgerHint:
        """Store one event and update the run's SUMMARY hint; returns the hint after the update.

        Raises
        ------
        StateError
            When the state table cannot be written.
        """
        pk, occurred, expires = run_pk(event.run_id), stamp(event.occurred_at), _epoch(now + LEDGER_RETENTION)
        # The newest event per business key wins; an older or identical one leaves the item as it is.
        self._conditional(
            "put_item",
            f"record {event.event_type.value} of run {event.run_id}",
            Item=to_item(
                {
                    "pk": pk,
                    "sk": f"EVENT#{ledger_key(event)}",
                    "event_type": event.event_type.value,
                    "occurred_at": occurred,
                    "event": event.model_dump_json(),
                    "expires_at": expires,
                }
            ),
            ConditionExpression="attribute_not_exists(pk) OR occurred_at < :t",
            ExpressionAttributeValues={":t": {"S": occurred}},
        )
        summary = self._update_summary(event, now, expires)
        hint = _hint(summary)
        for attribute, applies in (
            ("last_staged_at", isinstance(event, DatasetStaged)),
            ("last_modeled_at", is_model_outcome(event)),
        ):
            if applies:
                newer = self._conditional(
                    "update_item",
                    f"advance {attribute} of run {event.run_id}",
                    Key=to_item({"pk": pk, "sk": "SUMMARY"}),
                    UpdateExpression="SET #a = :t",
                    ConditionExpression="attribute_not_exists(#a) OR #a < :t",
                    ExpressionAttributeNames={"#a": attribute},
                    ExpressionAttributeValues={":t": {"S": occurred}},
                    ReturnValues="ALL_NEW",
                )
                if newer is not None:
                    hint = _hint(from_item(newer["Attributes"]))
        # The first event of a run opens it in the index, and so does a late one after its summary (a redrive).
        if summary.get("first_seen_at") == stamp(now) or summary.get("summarised_at"):
            self._open(event.run_id, now, expires)
        return hint

    def _open(self, run_id: str, now: datetime, expires: int) -> None:
        self._call(
            "update_item",
            "open the run in the index",
            Key=to_item({"pk": OPEN_INDEX_PK, "sk": f"OPEN#{run_id}"}),
            UpdateExpression="SET run_id = :r, first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :e",
            ExpressionAttributeValues=to_item({":r": run_id, ":now": stamp(now), ":e": expires}),
        )

    def _update_summary(self, event: PipelineEvent, now: datetime, expires: int) -> dict[str, Any]:
        sets = ["first_seen_at = if_not_exists(first_seen_at, :now)", "expires_at = :e"]
        values: dict[str, Any] = {":now": {"S": stamp(now)}, ":e": {"N": str(expires)}}
        adds = []
        if isinstance(event, RunStarted):
            sets += ["#trigger = :trigger", "started_at = :started"]
            values[":trigger"] = {"S": event.trigger.value}
            values[":started"] = {"S": stamp(event.occurred_at)}
            if event.datasets:
                adds.append("expected :expected")
                values[":expected"] = {"SS": sorted(set(event.datasets))}
        ref = dataset_ref(event)
        if ref and terminal_outcome(event):
            adds.append("terminal :ref")
            values[":ref"] = {"SS": [ref]}
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        response = self._call(
            "update_item",
            f"update the summary of run {event.run_id}",
            Key=to_item({"pk": run_pk(event.run_id), "sk": "SUMMARY"}),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            **({"ExpressionAttributeNames": {"#trigger": "trigger"}} if isinstance(event, RunStarted) else {}),
        )
        return from_item(response["Attributes"])

    # -- reading ----------------------------------------------------------------------------------------------
    def events(self, run_id: str) -> list[PipelineEvent]:
        """Every event in the run's ledger."""
        items = self.query(run_pk(run_id), "EVENT#")
        return [parse_pipeline_event(item["event"]) for item in items]

    def summary(self, run_id: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item",
            f"read the summary of run {run_id}",
            Key=to_item({"pk": run_pk(run_id), "sk": "SUMMARY"}),
            ConsistentRead=True,
        )
        return from_item(response["Item"]) if "Item" in response else None

    def knows_run(self, run_id: str) -> bool:
        """Whether the run's run.started is in the ledger."""
        item = self.summary(run_id)
        return bool(item and item.get("started_at"))

    def open_runs(self) -> list[OpenRun]:
        return [
            OpenRun(run_id=item["run_id"], first_seen_at=_parse_stamp(item["first_seen_at"]))
            for item in self.query(OPEN_INDEX_PK, "OPEN#")
        ]

    # -- summaries ----------------------------------------------------------------------------------------------
    def mark_summarised(self, run_id: str, digest: str, now: datetime) -> None:
        """Remember the summary that went out, and take the run out of the open index."""
        self._call(
            "update_item",
            f"mark run {run_id} summarised",
            Key=to_item({"pk": run_pk(run_id), "sk": "SUMMARY"}),
            UpdateExpression="SET last_digest = :d, summarised_at = :now ADD summaries_sent :one",
            ExpressionAttributeValues=to_item({":d": digest, ":now": stamp(now), ":one": 1}),
        )
        self.close(run_id)

    def close(self, run_id: str) -> None:
        self._call("delete_item", f"close run {run_id}", Key=to_item({"pk": OPEN_INDEX_PK, "sk": f"OPEN#{run_id}"}))

    # -- freshness ----------------------------------------------------------------------------------------------
    def record_freshness(self, event: PipelineEvent) -> None:
        """Advance the source's newest staging or "unchanged" confirmation (never backwards)."""
        attribute = {DatasetStaged: "last_staged_at", DatasetUnchanged: "last_unchanged_at"}.get(type(event))
        if attribute is None or event.source is None:
            return
        self._conditional(
            "update_item",
            f"advance the freshness of {event.source.value}",
            Key=to_item({"pk": f"SOURCE#{event.source.value}", "sk": "SEEN"}),
            UpdateExpression="SET #a = :t",
            ConditionExpression="attribute_not_exists(#a) OR #a < :t",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":t": {"S": stamp(event.occurred_at)}},
        )

    def freshness_marks(self, source: str) -> list[datetime | None]:
        """Every time the lake was confirmed current for a source: the notifier's own marks, and the
        transformer's ``SOURCE#{source}/FRESHNESS`` item when it keeps one."""
        marks: list[datetime | None] = []
        for sk, attributes in (("SEEN", ("last_staged_at", "last_unchanged_at")), ("FRESHNESS", ("last_staged_at",))):
            response = self._call(
                "get_item",
                f"read the freshness of {source}",
                Key=to_item({"pk": f"SOURCE#{source}", "sk": sk}),
                ConsistentRead=True,
            )
            item = from_item(response["Item"]) if "Item" in response else {}
            marks.extend(_parse_stamp(item[a]) if isinstance(item.get(a), str) else None for a in attributes)
        return marks


def _hint(item: dict[str, Any]) -> LedgerHint:
    expected = item.get("expected")
    return LedgerHint(
        expected=frozenset(expected) if expected else None,
        terminal=frozenset(item.get("terminal") or ()),
        last_staged_at=item.get("last_staged_at"),
        last_modeled_at=item.get("last_modeled_at"),
    )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _parse_stamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
