"""The store's OpenTelemetry gauges, read with the real SDK and an in-memory reader."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from rampup.redis_source import RedisSource
from rampup.store import Store
from rampup.store_telemetry import AGE, STATUS, VERSION, observe_sources
from redis_server import RedisServer

from .helpers import doc, wait_until


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = list(m.data.data_points)
    return out


def test_gauges_report_status_age_and_version(redis_server: RedisServer) -> None:
    """Status is 1 for ready while Redis serves, 1 for stale once it is down; age and version."""
    Store(redis_server.url, "shop").push(doc())
    source = RedisSource(redis_server.url, "shop", interval=0.05)
    reader = InMemoryMetricReader()
    observe_sources(MeterProvider(metric_readers=[reader]))
    try:
        got = points(reader)
        mine = [p for p in got[STATUS] if p.attributes["rampup.namespace"] == "shop"]
        on = {p.attributes["rampup.source.status"] for p in mine if p.value == 1}
        assert on == {"ready"}
        assert [p.value for p in got[VERSION] if p.attributes["rampup.namespace"] == "shop"] == [1]
        assert all(p.value >= 0 for p in got[AGE])
        source.snapshot  # noqa: B018 - starts the watcher
        redis_server.stop()
        wait_until(lambda: source.status == "stale")
        got = points(reader)
        mine = [p for p in got[STATUS] if p.attributes["rampup.namespace"] == "shop"]
        assert {p.attributes["rampup.source.status"] for p in mine if p.value == 1} == {"stale"}
    finally:
        source.close()
