"""Metrics with low-cardinality dimensions beside ``service`` (a source, a reason, a kind of notice).

Powertools' ``Metrics`` shares one dimension set per flush, so a metric with its own dimensions is one EMF document
of its own (``put_metric``); ``Telemetry`` accumulates such counts over an invocation and emits each total once.
"""

from __future__ import annotations

from collections import defaultdict

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from datalake.observability import METRICS_NAMESPACE


def put_metric(
    name: str, value: float, unit: MetricUnit, service: str, namespace: str = METRICS_NAMESPACE, **dimensions: str
) -> None:
    """One EMF document: the metric, ``service`` and the given dimensions."""
    with single_metric(
        name=name, unit=unit, value=value, namespace=namespace, default_dimensions={"service": service}
    ) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


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
            put_metric(name, total, unit, service, self.namespace, **dict(dims))
        self._values.clear()
