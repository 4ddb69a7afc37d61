"""The state table items a staging writes: the dataset's staging outcome and its source's freshness."""

from __future__ import annotations

from datetime import datetime

from datalake.contracts import Manifest
from datalake.state import ConditionFailed, StateStore, dataset_pk, utc_stamp


class StateRecorder:
    """Writes ``DATASET#{source}#{dataset}/STATE`` (staging fields only) and ``SOURCE#{source}/FRESHNESS``."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def staged(
        self,
        manifest: Manifest,
        manifest_key: str,
        counts: dict[str, int],
        now: datetime,
        current_files: dict[str, str | None] | None = None,
    ) -> None:
        """Record the dataset's staging outcome, then advance its source's freshness (never backwards).

        Two writes, not one transaction: every staging of a source writes the same FRESHNESS item, and DynamoDB
        cancels one of two transactions that overlap on an item (TransactionConflict, which the SDK does not
        retry), so concurrent transformers would fail each other's records after their staging was written.
        Plain writes to one item are applied one after the other; the condition keeps the newest stamp whichever
        lands last. A failure between the two writes fails the record, and its retry writes both again.

        Parameters
        ----------
        current_files: staging group -> its file (None when retired), merged into ``staged_groups``, the files the
            dataset's staging consists of, which the extractor checks to restore any that disappear.

        Raises
        ------
        datalake.state.StateError
            When the state table cannot be written.
        """
        source = manifest.source.value
        previous = self.state.get(dataset_pk(source, manifest.dataset), "STATE") or {}
        groups = {**(previous.get("staged_groups") or {}), **(current_files or {})}
        staged_at = utc_stamp(now)
        self.state.update(
            dataset_pk(source, manifest.dataset),
            "STATE",
            set_values={
                "staged_groups": {group: key for group, key in sorted(groups.items()) if key},
                "staged_at": staged_at,
                "staged_manifest_key": manifest_key,
                "staged_run_id": manifest.run_id,
                "staged_content_sha256": manifest.content_sha256,
                "staged_ingested_at": utc_stamp(manifest.fetched),
                "staged_rows": counts.get("rows_written", 0),
                "staged_rows_quarantined": counts.get("rows_quarantined", 0),
                "last_outcome": "staged",
            },
        )
        try:
            self.state.update(
                f"SOURCE#{source}",
                "FRESHNESS",
                set_values={
                    "last_staged_at": staged_at,
                    "last_staged_dataset": manifest.dataset,
                    "last_staged_run_id": manifest.run_id,
                    "last_staged_manifest_key": manifest_key,
                },
                condition="attribute_not_exists(last_staged_at) OR last_staged_at < :c_staged_at",
                condition_values={":c_staged_at": staged_at},
            )
        except ConditionFailed:
            pass  # a staging of the source stamped later is recorded already: its freshness stands

    def quarantined(
        self, manifest: Manifest, manifest_key: str, reason: str, quarantine_key: str, now: datetime
    ) -> None:
        self.state.update(
            dataset_pk(manifest.source.value, manifest.dataset),
            "STATE",
            set_values={
                "quarantined_at": utc_stamp(now),
                "quarantined_manifest_key": manifest_key,
                "quarantine_key": quarantine_key,
                "quarantine_reason": reason[:1000],
                "last_outcome": "quarantined",
            },
        )
