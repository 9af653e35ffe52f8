"""OpenTelemetry gauges for the flag store's health: each :class:`~rampup.redis_source.RedisSource`
of the process reports its status and the age of what it serves.

Call :func:`observe_sources` once (at start-up, next to your OpenTelemetry set-up); the gauges
are observed at each export and cover every RedisSource alive at that moment. Depends on
``opentelemetry-api`` only.

- ``rampup.source.status``: 1 for the source's current status, 0 for the others, with the
  attributes ``rampup.namespace`` and ``rampup.source.status`` (``ready``, ``stale``,
  ``error``): alert on ``status="stale"`` or ``"error"`` being 1.
- ``rampup.source.age`` (s): seconds since Redis last confirmed the served document.
- ``rampup.source.version``: the version of the document served.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import MissingDependency

try:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
except ImportError as exc:  # pragma: no cover - opentelemetry is installed in tests
    raise MissingDependency(
        'rampup.store_telemetry needs OpenTelemetry: pip install "rampup[otel]"'
    ) from exc

from . import __version__
from .redis_source import READY, STALE, STATUS_ERROR, live_sources

__all__ = ["AGE", "STATUS", "VERSION", "observe_sources"]

STATUS = "rampup.source.status"
AGE = "rampup.source.age"
VERSION = "rampup.source.version"
_STATUSES = (READY, STALE, STATUS_ERROR)


def _status(_: CallbackOptions) -> Iterable[Observation]:
    for source in live_sources():
        for status in _STATUSES:
            yield Observation(
                1 if source.status == status else 0,
                {"rampup.namespace": source.namespace, "rampup.source.status": status},
            )


def _age(_: CallbackOptions) -> Iterable[Observation]:
    for source in live_sources():
        age = source.age
        if math.isfinite(age):  # never confirmed: no point rather than an infinite one
            yield Observation(age, {"rampup.namespace": source.namespace})


def _version(_: CallbackOptions) -> Iterable[Observation]:
    for source in live_sources():
        yield Observation(source.version, {"rampup.namespace": source.namespace})


def observe_sources(meter_provider: MeterProvider | None = None) -> None:
    """Register the store gauges with ``meter_provider`` (the global one by default)."""
    meter = get_meter("rampup", __version__, meter_provider)
    meter.create_observable_gauge(
        STATUS, callbacks=[_status], description="1 for each flag source's current status"
    )
    meter.create_observable_gauge(
        AGE,
        callbacks=[_age],
        unit="s",
        description="seconds since the flag store last confirmed the served document",
    )
    meter.create_observable_gauge(
        VERSION, callbacks=[_version], description="version of the flag document served"
    )
