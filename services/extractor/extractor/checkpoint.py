"""Checkpoints of a paged extraction: the state table says who may continue, the bucket holds what was landed.

- The state table item ``DATASET#socrata#{id}`` / ``PAGING#{run_id}`` is small and changes by compare-and-set:
  ``cp_seq`` (the checkpoint's number), ``cp_holder`` (the message segment allowed to continue: 0 for the
  scheduler's message, then the segment of each continuation), ``cp_status`` (``paging`` or ``done``) and
  ``state_key``.
- Beside the landing's parts, under ``{run_ts}-{token}/_checkpoint/``: ``state-{seq}.json`` (``PagingState``),
  ``ids-{seq}.bin`` (the ``:id`` digests first seen in that invocation) and ``metadata.json`` (the dataset's
  metadata as the first invocation received it). Removed when the extraction ends.

Exactly one message may continue an extraction: the one whose segment is the holder. A message holding an older
segment is stale (its continuation was sent) and does nothing; a retried message whose invocation failed before
it handed over is still the holder, and resumes from the last checkpoint instead of starting again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from datalake.lake import LakeError, LakeStore, ObjectMissing
from datalake.layout import checkpoint_prefix
from datalake.state import ConditionFailed, StateStore, dataset_pk
from extractor.errors import TransientFailure
from extractor.paging import PagingState
from extractor.proof import IdLedger

logger = Logger(child=True)

CHECKPOINT_TTL_SECONDS = 14 * 24 * 3600  # a checkpoint nobody resumed (its messages dead-lettered) expires
PAGING = "paging"
DONE = "done"


class CheckpointLost(TransientFailure):
    """Another invocation moved the checkpoint meanwhile (a duplicate delivery): this one stops, nothing is lost."""

    reason_code = "checkpoint_moved"


@dataclass(frozen=True)
class Claim:
    """What a message may do with its extraction: continue from ``state`` (None: from the start), or nothing."""

    seq: int = 0
    holder: int = 0
    state: PagingState | None = None
    stale: str | None = None  # why this message must not page (another message holds the extraction)


def paging_sk(run_id: str) -> str:
    return f"PAGING#{run_id}"


def segment_of(request: ExtractRequest) -> int:
    return request.continuation.segment if request.continuation is not None else 0


class CheckpointStore:
    def __init__(self, lake: LakeStore, state: StateStore) -> None:
        self.lake = lake
        self.state = state

    @staticmethod
    def _key(request: ExtractRequest) -> tuple[str, str]:
        return dataset_pk(request.source.value, request.dataset), paging_sk(request.run_id)

    def prefix(self, request: ExtractRequest, token: str) -> str:
        return checkpoint_prefix(request.source, request.dataset, request.requested_at, token)

    # -- reading ------------------------------------------------------------------------------------------------
    def claim(self, request: ExtractRequest) -> Claim:
        """Who may continue this extraction, and from where.

        Raises
        ------
        StateError, LakeError
            When the table or the bucket cannot be read (transient).
        """
        segment = segment_of(request)
        item = self.state.get(*self._key(request))
        if item is None:
            if segment == 0:
                return Claim()
            return Claim(stale=f"segment {segment} resumes no checkpoint: the extraction has ended")
        if item.get("cp_status") == DONE:
            return Claim(stale="the extraction has ended in another invocation")
        holder = int(item.get("cp_holder") or 0)
        if holder != segment:
            return Claim(stale=f"checkpoint {item.get('cp_seq')} is held by segment {holder}, not {segment}")
        seq = int(item["cp_seq"])
        state_key = item.get("state_key")
        if not state_key:
            return Claim(seq=seq, holder=holder)  # reset after a disproof: page again from the start
        try:
            document = json.loads(self.lake.get_bytes(state_key))
            state = PagingState.from_json(document)
        except ObjectMissing as exc:
            raise LakeError(f"checkpoint {seq} of {request.dataset} names {state_key}, which is missing") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise LakeError(f"checkpoint {state_key} is not a paging state: {exc}") from exc
        return Claim(seq=seq, holder=holder, state=state)

    def ledger(self, state: PagingState) -> IdLedger:
        """The ``:id`` digests of every page landed so far (the segments of every checkpoint).

        Raises
        ------
        LakeError
            When a segment is missing or cut.
        """
        ledger = IdLedger()
        for key in state.ledger_keys:
            try:
                ledger.load_segment(self.lake.get_bytes(key))
            except ValueError as exc:
                raise LakeError(f"id ledger segment {key} is not whole: {exc}") from exc
        if ledger.count != state.rows - state.without_id:
            raise LakeError(f"the id ledger of checkpoint {state.token} holds {ledger.count} ids for {state.rows} rows")
        return ledger

    # -- writing ------------------------------------------------------------------------------------------------
    def save(
        self,
        request: ExtractRequest,
        claim: Claim,
        state: PagingState,
        ledger_segment: bytes,
        metadata_body: bytes | None,
    ) -> int:
        """Write checkpoint ``claim.seq + 1``: its ledger segment, the metadata (first time), the state, then the
        table item (compare-and-set on the claimed ``seq`` and ``holder``). Returns the new ``seq``.

        Raises
        ------
        CheckpointLost
            When another invocation moved the checkpoint meanwhile.
        LakeError, StateError
        """
        seq = claim.seq + 1
        prefix = self.prefix(request, state.token)
        if metadata_body is not None and state.metadata_key is None:
            state.metadata_key = f"{prefix}metadata.json"
            self.lake.put_bytes(state.metadata_key, metadata_body, content_type="application/json")
        if ledger_segment:
            key = f"{prefix}ids-{seq:05d}.bin"
            self.lake.put_bytes(key, ledger_segment)
            state.ledger_keys.append(key)
        state_key = f"{prefix}state-{seq:05d}.json"
        self.lake.put_bytes(state_key, json.dumps(state.to_json()).encode(), content_type="application/json")
        self._advance(request, claim, {"cp_seq": seq, "state_key": state_key})
        return seq

    def hand_over(self, request: ExtractRequest, seq: int, holder: int) -> None:
        """After the continuation of segment ``seq`` was sent: it becomes the holder.

        Raises
        ------
        CheckpointLost, StateError
        """
        self._advance(request, Claim(seq=seq, holder=holder), {"cp_holder": seq})

    def reset(self, request: ExtractRequest, claim: Claim, token: str) -> None:
        """Forget what was paged (the evidence disproved the snapshot): the holder's retry pages from the start.

        Raises
        ------
        CheckpointLost, LakeError, StateError
        """
        if claim.seq == 0 and claim.state is None:
            return  # it never checkpointed: the retry starts from the start anyway
        self._remove_files(request, token)
        self._advance(request, claim, {"cp_seq": claim.seq + 1, "state_key": ""})

    def finish(self, request: ExtractRequest, claim: Claim, token: str) -> None:
        """The extraction ended (landed, unchanged or held): later messages of it are stale; the files go.

        Raises
        ------
        CheckpointLost, LakeError, StateError
        """
        if claim.seq == 0 and claim.state is None:
            return  # it never checkpointed: nothing to close
        self._advance(request, claim, {"cp_status": DONE, "state_key": ""})
        self._remove_files(request, token)

    def _advance(self, request: ExtractRequest, claim: Claim, values: dict[str, Any]) -> None:
        now = int(time.time())
        condition = "cp_seq = :c_seq AND cp_holder = :c_holder AND cp_status = :c_paging"
        if claim.seq == 0:
            condition = f"attribute_not_exists(pk) OR ({condition})"
        try:
            self.state.update(
                *self._key(request),
                set_values={
                    "cp_status": PAGING,
                    "cp_holder": claim.holder,
                    **values,
                    "updated_at": now,
                    "expires_at": now + CHECKPOINT_TTL_SECONDS,
                },
                condition=condition,
                condition_values={":c_seq": claim.seq, ":c_holder": claim.holder, ":c_paging": PAGING},
            )
        except ConditionFailed as exc:
            raise CheckpointLost(
                f"the checkpoint of {request.dataset} (run {request.run_id}) moved past {claim.seq} meanwhile"
            ) from exc

    def _remove_files(self, request: ExtractRequest, token: str) -> None:
        for info in list(self.lake.list(self.prefix(request, token))):
            self.lake.delete(info.key)
