"""SchedulerFunction: a scheduled (EventBridge) or manual invoke becomes one ExtractQueue message per entry.

Powertools wiring only: the run is planned, claimed, enqueued and announced by ``scheduler.service``.
"""

from __future__ import annotations

import datalake.startup  # noqa: F401 - first: the shared libraries loaded, then frozen out of the collector's walks

# isort: split
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from datalake.observability import logger, metrics, tracer
from datalake.settings import SchedulerSettings, settings_for
from datalake.wiring import Composed
from scheduler.service import Scheduler, build_scheduler

settings = settings_for(SchedulerSettings)
scheduler: Composed[Scheduler] = Composed(lambda: build_scheduler(settings))


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Plan a run and enqueue it.

    Parameters
    ----------
    event: an EventBridge "Scheduled Event", or a manual payload
        ``{"trigger": "manual"|"backfill", "sources": [...], "datasets": [...], "start_year": .., "end_year": ..}``.

    Returns
    -------
    ``{"run_id", "trigger", "sent", "datasets"}``

    Raises
    ------
    scheduler.service.BadScheduleRequest
        On a payload that is not an object, a malformed request, an unknown dataset, a window in the future, or a
        run id an earlier invoke already used; nothing is sent.
    """
    run = scheduler().schedule(event)
    metrics.add_metric(name="ExtractRequestsSent", unit=MetricUnit.Count, value=run.sent)
    logger.info("run scheduled", extra={"trigger": run.trigger.value, "sent": run.sent})
    return run.as_dict()
