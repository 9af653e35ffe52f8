"""OpenFeatureBackend with rampup's telemetry, through the real OpenTelemetry SDK (in-memory
span exporter) and the real OpenTelemetry WSGI middleware."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

pytest.importorskip("opentelemetry.sdk")

from openfeature import api
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import rampup
from rampup.openfeature import OpenFeatureBackend
from rampup.telemetry import RampupTelemetry
from rampup.wsgi import RampupMiddleware


def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Reads new-checkout twice and color once."""
    rampup.flags.enabled("new-checkout")
    rampup.flags.enabled("new-checkout")
    rampup.flags.variant("color")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_span_events_for_openfeature_decisions() -> None:
    """The server span gets one feature_flag.evaluation event per flag read, with the
    provider's variant and the mapped reason, as for rampup's own flags."""
    api.set_provider_and_wait(
        InMemoryProvider(
            {
                "new-checkout": InMemoryFlag("on", {"on": True, "off": False}),
                "color": InMemoryFlag("blue", {"red": "#f00", "blue": "#00f"}),
            }
        )
    )
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    backend = OpenFeatureBackend(api.get_client(), types={"new-checkout": "boolean"})
    inner = RampupMiddleware(view, backend, listeners=[RampupTelemetry()], user_header="X-User")
    app = OpenTelemetryMiddleware(inner, tracer_provider=provider)
    environ: dict[str, Any] = {"wsgi.input": io.BytesIO(), "HTTP_X_USER": "u1"}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(body)
    body.close()  # type: ignore[attr-defined]
    (span,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    got = [
        (e.attributes["feature_flag.key"], e.attributes["feature_flag.result.variant"])
        for e in span.events
        if e.name == "feature_flag.evaluation" and e.attributes is not None
    ]
    assert got == [("new-checkout", "on"), ("color", "blue")]
    provider.shutdown()
