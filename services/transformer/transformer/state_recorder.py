"""The state table items a staging writes: the dataset's staging outcome and its source's freshness."""

from __future__ import annotations

from datetime import datetime

from datalake.contracts import Manifest
from datalake.state import ConditionFailed, StateError, StateStore, dataset_pk, utc_stamp

MERGE_ATTEMPTS = 5


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

        ``staged_groups`` is merged compare-and-set: the write holds only if the map is still the one read, else it
        is read and merged again. Two landings of one dataset staged at once (overlapping runs of one bulk survey)
        each add their own groups; without the condition the later write would put back the earlier map, losing
        the other's group or bringing back a file it had replaced.

        Parameters
        ----------
        current_files: staging group -> its file (None when retired), merged into ``staged_groups``, the files the
            dataset's staging consists of, which the extractor checks to restore any that disappear.

        Raises
        ------
        datalake.state.StateError
            When the state table cannot be written, or the groups changed under every attempt to merge them.
        """
        source = manifest.source.value
        pk = dataset_pk(source, manifest.dataset)
        staged_at = utc_stamp(now)
        for _ in range(MERGE_ATTEMPTS):
            previous = self.state.get(pk, "STATE") or {}
            read = previous.get("staged_groups")
            groups = {**(read or {}), **(current_files or {})}
            try:
                self.state.update(
                    pk,
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
                    condition="attribute_not_exists(staged_groups)" if read is None else "staged_groups = :c_groups",
                    condition_values=None if read is None else {":c_groups": read},
                )
                break
            except ConditionFailed:
                continue  # another staging of this dataset changed its groups since the read: merge again
        else:
            raise StateError(
                f"cannot record the staging of {manifest_key}: the dataset's staged groups changed under each of "
                f"{MERGE_ATTEMPTS} attempts to merge them"
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
