"""Span events (rampup._telemetry_spans) against the real SDK: the same event as the SDK's own
add_event, with the SDK's span limits applied."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from rampup._telemetry_spans import SpanEvent

ATTRS = {"feature_flag.key": "f", "feature_flag.result.variant": "on", "x": "y" * 50}


def test_an_event_equals_the_sdks_own() -> None:
    """Name and attributes are those add_event records, each event with its own timestamp."""
    span = TracerProvider().get_tracer("t").start_span("s")
    event = SpanEvent("feature_flag.evaluation", ATTRS)
    event.add_to(span)
    event.add_to(span)
    span.add_event("feature_flag.evaluation", ATTRS)
    ours, again, theirs = span.events
    assert (ours.name, dict(ours.attributes or {})) == (theirs.name, dict(theirs.attributes or {}))
    assert ours.timestamp <= again.timestamp <= theirs.timestamp


def test_span_limits_are_honoured() -> None:
    """With lower limits (attributes per event, value length) the event is cut by the SDK."""
    limits = SpanLimits(max_event_attributes=2, max_attribute_length=10)
    span = TracerProvider(span_limits=limits).get_tracer("t").start_span("s")
    SpanEvent("e", ATTRS).add_to(span)
    (event,) = span.events
    assert len(event.attributes or {}) == 2
    assert all(len(str(v)) <= 10 for v in (event.attributes or {}).values())
