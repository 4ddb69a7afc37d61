"""Scheduler domain: turn the catalog and a trigger into one ExtractRequest per series or dataset.

Pure logic: no boto3, no environment, no Powertools.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from datalake.catalog import Catalog, CatalogEntry
from datalake.contracts import ExtractParams, ExtractRequest, ScheduleRequest, Source, Trigger

SQS_BATCH_LIMIT = 10
_YEARLESS_SOURCES = {Source.BLS_BULK, Source.DATAUSA, Source.SOCRATA}


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    trigger: Trigger
    requests: list[ExtractRequest]

    @property
    def datasets(self) -> list[str]:
        return [f"{r.source.value}/{r.dataset}" for r in self.requests]


def new_run_id(moment: datetime, seed: str) -> str:
    """A sortable run id: the UTC time plus 8 hex digits of a seed (the EventBridge event id, so a retried
    invocation of the same scheduled event gets the same run id and the extractor's idempotency dedupes it)."""
    digest = hashlib.sha256(seed.encode()).hexdigest()[:8]
    return f"{moment:%Y%m%dT%H%M%SZ}-{digest}"


def params_for(entry: CatalogEntry, request: ScheduleRequest | None, now: datetime, window_years: int) -> ExtractParams:
    """The year window of one request.

    A scheduled or plain manual run takes the recent window (the last ``window_years`` years) for the BLS API;
    a backfill takes the requested years. Snapshot sources (bulk, DataUSA, Socrata) take everything.
    """
    accept_drop = request is not None and request.accept_drop
    if entry.source in _YEARLESS_SOURCES:
        return ExtractParams(accept_drop=accept_drop)
    if request is not None and request.start_year is not None:
        return ExtractParams(
            start_year=request.start_year, end_year=request.end_year or now.year, accept_drop=accept_drop
        )
    return ExtractParams(start_year=now.year - window_years + 1, end_year=now.year, accept_drop=accept_drop)


def check_window(request: ScheduleRequest, now: datetime) -> None:
    """A backfill window must lie in the past: no source publishes next year's data yet.

    Raises
    ------
    ValueError
        When ``start_year`` or ``end_year`` is after the trigger's year.
    """
    for name in ("start_year", "end_year"):
        year = getattr(request, name)
        if year is not None and year > now.year:
            raise ValueError(f"{name} {year} is in the future (it is {now.year}): no source has data for it yet")


def plan_run(
    catalog: Catalog, request: ScheduleRequest | None, now: datetime, seed: str, window_years: int = 3
) -> RunPlan:
    """Plan one run: which entries to extract, with which parameters, under which run id.

    Parameters
    ----------
    catalog: the loaded catalog.
    request: a manual or backfill request, or None for the daily schedule.
    now: the trigger time (UTC).
    seed: makes the run id unique (the event id, or a random token for manual runs).

    Raises
    ------
    datalake.catalog.CatalogError
        When the request names datasets that are not in the catalog.
    ValueError
        When the request's window lies in the future, or it selects nothing.
    """
    if request is not None:
        check_window(request, now)
    trigger = Trigger.SCHEDULE if request is None else request.trigger
    entries = catalog.entries if request is None else catalog.select(request.sources, request.datasets)
    if not entries:
        raise ValueError("the request selects no catalog entries")
    run_id = request.run_id if request is not None and request.run_id else new_run_id(now, seed)
    requests = [
        ExtractRequest(
            run_id=run_id,
            source=entry.source,
            dataset=entry.dataset,
            params=params_for(entry, request, now, window_years),
            trigger=trigger,
            requested_at=now,
        )
        for entry in entries
    ]
    return RunPlan(run_id=run_id, trigger=trigger, requests=requests)


def chunks(items: Sequence[ExtractRequest], size: int = SQS_BATCH_LIMIT) -> Iterator[list[ExtractRequest]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
