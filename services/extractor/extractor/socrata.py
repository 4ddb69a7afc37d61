"""Socrata datasets: every row, paged by ``:id``, proven whole, across as many invocations as it takes.

One extraction (one ExtractRequest of a Socrata dataset):

1. **Claim** (``extractor.checkpoint``): a continuation resumes from the checkpoint its segment names; a message
   that no longer holds the extraction does nothing; a retried message that failed before it handed over resumes
   from its last checkpoint. Nothing is ever paged again from the start, except after a disproof.
2. **Page** (``$order=:id``, ``$limit``, ``$offset``): each page is spooled as it arrives and scanned without
   building a list of rows; its ``:id`` digests go into the ledger (8 bytes a row). Pages are landed at their
   final keys (``{run_ts}-{token}/part-NNNNN.json``) once the spool outgrows ``SPOOL_LIMIT_BYTES``; a dataset
   smaller than that lands at the end, and writes nothing when it is unchanged.
3. **Hand over** before the invocation's time runs out (``extractor.paging.hand_over_now``): land the spooled
   pages, write a checkpoint, send a continuation message, make it the holder. A transient failure while paging
   (the source, the budget) also checkpoints what was landed before it fails the record.
4. **Prove and land**, in the invocation that reaches the end: the count asked before paging (by the first
   invocation) and after it (now) equal the rows received over all invocations, every ``:id`` is unique across
   all of them, every page before the last was full (``extractor.proof.check_socrata``). Then the lander commits
   the manifest (or holds, or finds it unchanged) and the checkpoint is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urljoin

from aws_lambda_powertools import Logger

from datalake.contracts import ExtractRequest
from datalake.lake import PutResult
from extractor.budget import current_budget
from extractor.checkpoint import CheckpointStore, Claim
from extractor.domain import sha256_hex, socrata_columns, socrata_content_sha256, socrata_page_params
from extractor.errors import BadPayload, TransientFailure, bad_payload_kept
from extractor.http import HttpClient
from extractor.landing import Fetched, FetchedPart, Lander
from extractor.paging import SPOOL_LIMIT_BYTES, LandedPage, PagingState, hand_over_now, paging_token
from extractor.proof import (
    IdLedger,
    IncompleteSnapshot,
    SnapshotMoved,
    SocrataEvidence,
    check_socrata,
    now_utc,
    scan_rows,
    socrata_count,
    socrata_count_params,
)
from extractor.snapshots import checked, utf8
from extractor.telemetry import telemetry

logger = Logger(child=True)


@dataclass
class _Job:
    """One invocation's share of an extraction: the state to checkpoint, and the pages it holds."""

    request: ExtractRequest
    claim: Claim
    state: PagingState
    metadata: bytes
    columns: list[tuple[str, str]]
    ledger: IdLedger
    parts: list[FetchedPart] = field(default_factory=list)  # every page so far, landed or spooled
    new_pages: int = 0
    slowest_page_s: float = 0.0
    complete: bool = True  # False: a page that is not a JSON array was kept (last receive): no proof possible
    ended: bool = False

    @property
    def spooled_bytes(self) -> int:
        return sum(p.size for p in self.parts if p.written is None)

    def close(self) -> None:
        for part in self.parts:
            part.close()


@dataclass(frozen=True)
class Endpoints:
    views: str
    rows: str
    headers: dict[str, str] | None


class SocrataExtraction:
    """The Socrata connector, wired to the lander (landing pages and the manifest) and the checkpoint store."""

    def __init__(
        self,
        http: HttpClient,
        base_url: str,
        app_token: str | None,
        lander: Lander,
        checkpoints: CheckpointStore,
        send_continuation: Callable[[ExtractRequest], Any],
        max_pages_per_invocation: int = 0,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.http = http
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.app_token = app_token
        self.lander = lander
        self.checkpoints = checkpoints
        self.send_continuation = send_continuation
        self.max_pages = max_pages_per_invocation
        self.clock = clock

    def endpoints(self, dataset: str) -> Endpoints:
        return Endpoints(
            views=urljoin(self.base, f"api/views/{dataset}.json"),
            rows=urljoin(self.base, f"resource/{dataset}.json"),
            headers={"X-App-Token": self.app_token} if self.app_token else None,
        )

    # -- the use case -------------------------------------------------------------------------------------------
    def run(self, request: ExtractRequest, page_size: int, keep_bad: bool = False) -> dict[str, Any]:
        """Page the dataset as far as this invocation allows; hand over, or prove and land it.

        ``keep_bad`` (the request's last receive): a page that is not a JSON array is kept as the last page and
        metadata that is not JSON is kept as it is, each with a warning; a snapshot that cannot be proven whole is
        landed raw and held.

        Returns
        -------
        The lander's outcome (``extracted``, ``unchanged``, ``held``, ``superseded``), or ``continued`` when a
        continuation was sent (or when this message no longer holds the extraction).

        Raises
        ------
        DatasetNotFound
            When the dataset does not exist (404 on its metadata or its rows).
        IncompleteSnapshot, SnapshotMoved
            When the evidence disproves wholeness (retried from the start; held on the last receive).
        SourceUnavailable, BadPayload, TimeBudgetExceeded, PayloadTooLarge
            When a page fails: what was landed before is checkpointed first, so the retry resumes after it.
        CheckpointLost, LakeError, StateError, QueueError
            When a checkpoint, a landing or the continuation cannot be written.
        """
        claim = self.checkpoints.claim(request)
        if claim.stale is not None:
            logger.info("this message no longer holds the extraction; nothing to do", extra={"reason": claim.stale})
            return {"outcome": "continued", "source": "socrata", "dataset": request.dataset, "stale": claim.stale}
        where = self.endpoints(request.dataset)
        job = self._open(request, claim, where, page_size, keep_bad)
        try:
            try:
                self._page(job, where, keep_bad)
            except TransientFailure:
                self._checkpoint_before_failing(job)
                raise
            if not job.ended:
                return self._hand_over(job)
            fetched = self._proven(job, where, keep_bad)
            outcome = self.lander.land(fetched)
            self.checkpoints.finish(request, job.claim, job.state.token)
            return outcome
        finally:
            job.close()

    # -- opening: fresh, or from a checkpoint -------------------------------------------------------------------
    def _open(self, request: ExtractRequest, claim: Claim, where: Endpoints, page_size: int, keep_bad: bool) -> _Job:
        what = f"Socrata dataset {request.dataset}"
        state = claim.state
        if state is not None:
            metadata = self.checkpoints.lake.get_bytes(state.metadata_key) if state.metadata_key else b""
            ledger = self.checkpoints.ledger(state)
            parts = [_landed_part(page) for page in state.pages]
            logger.info(
                "resuming a paged extraction",
                extra={"checkpoint": claim.seq, "rows": state.rows, "pages": len(state.pages)},
            )
        else:
            fetched_at = self.clock()
            views = checked(self.http.fetch("GET", where.views, headers=where.headers), "socrata", what)
            try:
                metadata = views.read()
            finally:
                views.close()
            state = PagingState(
                token=paging_token(request.run_id, request.dataset),
                fetched_at=fetched_at.isoformat(),
                page_size=page_size,
                count_before=self._row_count(where, what),
                metadata_sha256=sha256_hex(metadata),
                metadata_bytes=len(metadata),
                metadata_url=where.views,
            )
            ledger, parts = IdLedger(), []
        state.invocations += 1
        columns = self._columns(metadata, keep_bad, state.warnings)
        return _Job(request, claim, state, metadata, columns, ledger, parts)

    @staticmethod
    def _columns(metadata: bytes, keep_bad: bool, warnings: list[str]) -> list[tuple[str, str]]:
        """The columns the dataset's metadata lists. With ``keep_bad``, metadata that is not JSON or lists no columns
        gives none and a warning: the rows are still fetched and landed, and the transformer quarantines them."""
        try:
            return socrata_columns(metadata)
        except BadPayload as exc:
            if not keep_bad:
                raise
            warning = bad_payload_kept(exc, "metadata")
            if warning not in warnings:
                warnings.append(warning)
            return []

    def _row_count(self, where: Endpoints, what: str) -> int:
        """The dataset's row count (``$select=count(*)``), asked with the same filter as the pages (none)."""
        download = checked(
            self.http.fetch("GET", where.rows, params=socrata_count_params(), headers=where.headers), "socrata", what
        )
        try:
            return socrata_count(download.read())
        finally:
            download.close()

    # -- paging -------------------------------------------------------------------------------------------------
    def _page(self, job: _Job, where: Endpoints, keep_bad: bool) -> None:
        """Page until the first short (or empty) page, or until this invocation must hand over."""
        state, what = job.state, f"Socrata dataset {job.request.dataset}"
        while True:
            budget = current_budget()
            remaining = budget.remaining() if budget is not None else float("inf")
            if hand_over_now(remaining, job.slowest_page_s, job.new_pages, self.max_pages):
                return
            started = time.monotonic()
            offset = state.next_offset
            params = socrata_page_params(offset, state.page_size)
            page = checked(self.http.fetch("GET", where.rows, params=params, headers=where.headers), "socrata", what)
            page_url = f"{where.rows}?{urlencode(params)}"
            try:
                scan = scan_rows(utf8(page.read(), f"{what}, page at offset {offset}"))
            except BadPayload as exc:
                if not keep_bad:
                    page.close()
                    raise
                state.warnings.append(bad_payload_kept(exc, f"page at offset {offset}"))
                job.parts.append(FetchedPart.of_download(page, "data", None, page_url))
                job.complete, job.ended = False, True
                return
            except Exception:
                page.close()
                raise
            if scan.rows == 0 and job.parts:
                page.close()  # an empty page after a full one: the end
                state.last_rows = 0
                job.ended = True
                return
            for row_id in scan.ids:
                job.ledger.add(row_id)
            state.without_id += scan.without_id
            job.parts.append(FetchedPart.of_download(page, "data", scan.rows, page_url))
            state.rows += scan.rows
            state.last_rows = scan.rows
            job.new_pages += 1
            job.slowest_page_s = max(job.slowest_page_s, time.monotonic() - started)
            if job.spooled_bytes > SPOOL_LIMIT_BYTES:
                self._land_spooled(job)
            # a short page ends the dataset; a source that keeps serving full pages past its own count is not
            # paged forever: the proof then finds more rows than counted
            if scan.rows < state.page_size or state.rows > state.count_before + state.page_size:
                job.ended = True
                return

    def _land_spooled(self, job: _Job) -> None:
        """Land every spooled page at its final key (and free its spool)."""
        for index, part in enumerate(job.parts):
            if part.written is None:
                self.lander.write_part(job.request, job.state.token, index, part)

    # -- handing over -------------------------------------------------------------------------------------------
    def _checkpoint(self, job: _Job) -> int:
        self._land_spooled(job)
        job.state.pages = [_landed_page(part) for part in job.parts]
        metadata = job.metadata if job.state.metadata_key is None else None
        seq = self.checkpoints.save(job.request, job.claim, job.state, job.ledger.unsaved_segment(), metadata)
        job.claim = Claim(seq=seq, holder=job.claim.holder, state=job.state)
        return seq

    def _hand_over(self, job: _Job) -> dict[str, Any]:
        request, state = job.request, job.state
        seq = self._checkpoint(job)
        self.send_continuation(request.continued(seq))
        self.checkpoints.hand_over(request, seq, job.claim.holder)
        telemetry.count("PagingHandovers", source="socrata")
        logger.info(
            "paging handed over to a continuation",
            extra={"segment": seq, "rows": state.rows, "pages": len(state.pages), "pages_now": job.new_pages},
        )
        return {
            "outcome": "continued",
            "source": "socrata",
            "dataset": request.dataset,
            "segment": seq,
            "rows": state.rows,
            "pages": len(state.pages),
        }

    def _checkpoint_before_failing(self, job: _Job) -> None:
        """A page failed: keep what this invocation paged, so the retry resumes after it (best effort: when the
        checkpoint cannot be written either, the retry resumes from the last one)."""
        if not job.new_pages:
            return
        try:
            seq = self._checkpoint(job)
        except Exception as exc:  # noqa: BLE001 - the page's own failure is the one the record reports
            logger.warning("could not checkpoint before failing", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        logger.info("checkpointed before failing", extra={"checkpoint": seq, "rows": job.state.rows})

    # -- the end ------------------------------------------------------------------------------------------------
    def _proven(self, job: _Job, where: Endpoints, keep_bad: bool) -> Fetched:
        """The whole snapshot as a fetch for the lander, with its proof (or, on the last receive, the disproof)."""
        request, state = job.request, job.state
        incomplete = None
        evidence = None
        if job.complete:
            evidence = SocrataEvidence(
                count_before=state.count_before,
                count_after=self._row_count(where, f"Socrata dataset {request.dataset}"),
                rows=state.rows,
                duplicate_ids=job.ledger.duplicates(),
                rows_without_id=state.without_id,
                page_size=state.page_size,
                last_page_rows=state.last_rows,
                pages=len(job.parts),
            )
            try:
                check_socrata(evidence)
            except SnapshotMoved:
                self.checkpoints.reset(request, job.claim, state.token)  # its retry pages the new version again
                raise
            except IncompleteSnapshot as exc:
                if not keep_bad:
                    self.checkpoints.reset(request, job.claim, state.token)
                    raise
                logger.warning(
                    "snapshot not proven whole on the last receive; landed raw and held", extra={"reason": str(exc)}
                )
                incomplete = exc
        logger.info(
            "Socrata dataset fetched",
            extra={
                "rows": state.rows,
                "pages": len(job.parts),
                "columns": len(job.columns),
                "counted": state.count_before,
                "invocations": state.invocations,
            },
        )
        metadata = FetchedPart.of_bytes(job.metadata, "metadata", None, state.metadata_url)
        proven = evidence is not None and incomplete is None
        return Fetched(
            request=request,
            source_url=where.rows,
            content_sha256=socrata_content_sha256([p.sha256 for p in job.parts], job.columns),
            parts=[*job.parts, metadata],
            warnings=list(state.warnings),
            paged=True,
            part_token=state.token,
            fetched_at=datetime.fromisoformat(state.fetched_at),
            proof={**evidence.as_proof(), "invocations": state.invocations} if evidence is not None else {},
            measures={"rows": state.rows} if proven else {},
            incomplete=incomplete,
        )


def _landed_part(page: LandedPage) -> FetchedPart:
    return FetchedPart(
        role="data",
        sha256=page.sha256,
        size=page.bytes,
        records=page.records,
        source_url=page.source_url,
        written=PutResult(key=page.key, etag="", version_id=page.version_id),
    )


def _landed_page(part: FetchedPart) -> LandedPage:
    if part.written is None or part.records is None:
        raise ValueError("only landed pages of rows belong in a checkpoint")
    return LandedPage(
        key=part.written.key,
        sha256=part.sha256,
        bytes=part.size,
        records=part.records,
        version_id=part.written.version_id,
        source_url=part.source_url,
    )
