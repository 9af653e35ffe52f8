"""Answer "is the error rate of new-checkout=on worse than =off?" from the outcome book, or
from exported metric data.

:func:`error_rates` reads the process's outcome book (``rampup.outcomes.book``, the default),
another book or a snapshot of one; or the ``rampup.requests`` and ``rampup.request.errors``
counters out of OpenTelemetry SDK metric data (``InMemoryMetricReader().get_metrics_data()``,
or the reader itself), summed per variant. It only walks the data's attributes, so it imports
nothing from the SDK. In a metrics backend, the same question is a ratio of two rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .outcomes import OutcomeBook, OutcomeSnapshot
from .outcomes import book as process_book

__all__ = ["VariantOutcome", "error_rates"]

_REQUESTS = "rampup.requests"
_ERRORS = "rampup.request.errors"
_KEY = "feature_flag.key"
_VARIANT = "feature_flag.result.variant"


@dataclass(frozen=True, slots=True)
class VariantOutcome:
    """Requests served one variant of a flag, and how many of them failed."""

    requests: int = 0
    errors: int = 0

    @property
    def error_rate(self) -> float:
        """errors / requests (0.0 when no request was served this variant)."""
        return self.errors / self.requests if self.requests else 0.0


def error_rates(metrics_data: Any = None, flag: str | None = None) -> dict[str, VariantOutcome]:
    """Requests and errors per variant of ``flag``, sorted by variant.

    ``error_rates("new-checkout")`` or ``error_rates(book, "new-checkout")`` read an outcome
    book (default: the process's) or an :class:`~rampup.outcomes.OutcomeSnapshot`. Given SDK
    ``MetricsData`` or a reader with ``get_metrics_data()``, the exported counters are summed
    over every resource and scope (sums of cumulative counters, the SDK's default)."""
    if flag is None and isinstance(metrics_data, str):
        metrics_data, flag = process_book, metrics_data
    if flag is None:
        raise TypeError("rampup: error_rates() needs the flag key: error_rates([source,] flag)")
    if isinstance(metrics_data, OutcomeBook | OutcomeSnapshot):
        stats = metrics_data.read(flag)
        return {v: VariantOutcome(stats[v].requests, stats[v].errors) for v in sorted(stats)}
    if hasattr(metrics_data, "get_metrics_data"):
        metrics_data = metrics_data.get_metrics_data()
    requests: dict[str, int] = {}
    errors: dict[str, int] = {}
    for rm in getattr(metrics_data, "resource_metrics", None) or ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                into = {_REQUESTS: requests, _ERRORS: errors}.get(metric.name)
                if into is None:
                    continue
                for point in metric.data.data_points:
                    attrs = point.attributes or {}
                    if attrs.get(_KEY) != flag:
                        continue
                    variant = str(attrs.get(_VARIANT))
                    into[variant] = into.get(variant, 0) + int(point.value)
    return {
        v: VariantOutcome(requests.get(v, 0), errors.get(v, 0))
        for v in sorted(set(requests) | set(errors))
    }
