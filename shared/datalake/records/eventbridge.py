"""The EventBridge scheduled event (the scheduler's trigger)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from datalake.records._base import Event


# -- EventBridge scheduled event (the scheduler's trigger) --------------------------------------------------------
class EventBridgeModel(Event):
    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]
