"""The state table items a staging writes: the dataset's staging outcome and its source's freshness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.contracts import Manifest
from datalake.state import StateError, StateStore, dataset_pk, to_item, utc_stamp


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
        """Both items in one transaction: the dataset's staging outcome and its source's freshness.

        ``current_files`` (staging group -> its file, None when retired) updates ``staged_groups``, the files the
        dataset's staging consists of, which the extractor checks to restore any that disappear.
        """
        source = manifest.source.value
        previous = self.state.get(dataset_pk(source, manifest.dataset), "STATE") or {}
        groups = {**(previous.get("staged_groups") or {}), **(current_files or {})}
        dataset_values = {
            "staged_groups": {group: key for group, key in sorted(groups.items()) if key},
            "staged_at": utc_stamp(now),
            "staged_manifest_key": manifest_key,
            "staged_run_id": manifest.run_id,
            "staged_content_sha256": manifest.content_sha256,
            "staged_ingested_at": utc_stamp(manifest.fetched),
            "staged_rows": counts.get("rows_written", 0),
            "staged_rows_quarantined": counts.get("rows_quarantined", 0),
            "last_outcome": "staged",
        }
        freshness_values = {
            "last_staged_at": utc_stamp(now),
            "last_staged_dataset": manifest.dataset,
            "last_staged_run_id": manifest.run_id,
            "last_staged_manifest_key": manifest_key,
        }
        items = [
            self._update(dataset_pk(source, manifest.dataset), "STATE", dataset_values),
            self._update(f"SOURCE#{source}", "FRESHNESS", freshness_values),
        ]
        try:
            self.state.ddb.transact_write_items(TransactItems=items)
        except (ClientError, BotoCoreError) as exc:
            raise StateError(f"cannot record the staging of {manifest_key}: {exc}") from exc

    def _update(self, pk: str, sk: str, values: dict[str, Any]) -> dict[str, Any]:
        names = {f"#n{i}": k for i, k in enumerate(values)}
        return {
            "Update": {
                "TableName": self.state.table_name,
                "Key": to_item({"pk": pk, "sk": sk}),
                "UpdateExpression": "SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(values))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":v{i}": v for i, v in enumerate(to_item(values).values())},
            }
        }

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
