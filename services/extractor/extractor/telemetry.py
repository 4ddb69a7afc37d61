"""Extractor metrics with low-cardinality dimensions (source, reason), aggregated per invocation.

Powertools' ``Metrics`` shares one dimension set per flush, so per-source counts are accumulated here and
emitted at the end of the invocation as one EMF document per (metric, dimensions).
"""

from __future__ import annotations

from collections import defaultdict

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from datalake.observability import METRICS_NAMESPACE


class Telemetry:
    def __init__(self, namespace: str = METRICS_NAMESPACE) -> None:
        self.namespace = namespace
        self._values: dict[tuple[str, MetricUnit, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    def count(self, name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
        self._values[(name, unit, tuple(sorted(dimensions.items())))] += value

    def snapshot(self) -> dict[str, float]:
        """``"Name[dim=value,...]" -> total``, for logs and tests."""
        return {
            f"{name}[{','.join(f'{k}={v}' for k, v in dims)}]": total for (name, _, dims), total in self._values.items()
        }

    def flush(self, service: str) -> None:
        for (name, unit, dims), total in sorted(self._values.items()):
            with single_metric(
                name=name, unit=unit, value=total, namespace=self.namespace, default_dimensions={"service": service}
            ) as metric:
                for key, value in dims:
                    metric.add_dimension(name=key, value=value)
        self._values.clear()


telemetry = Telemetry()
