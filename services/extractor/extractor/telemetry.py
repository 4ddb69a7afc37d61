"""Extractor metrics with low-cardinality dimensions (source, reason), aggregated per invocation and emitted at its
end (``datalake.telemetry``)."""

from __future__ import annotations

from datalake.telemetry import Telemetry

telemetry = Telemetry()
