"""The base of every trigger's event model: extra fields allowed, validators built on first use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)
