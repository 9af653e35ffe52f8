"""Prebuilt span events (rampup._telemetry_spans) against the real SDK: the same event as the
SDK's add_event, span limits honoured, and the public add_event whenever the fast path does not
apply."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace import _Span as SdkSpan

from rampup import _telemetry_spans
from rampup._telemetry_spans import SpanEvent

ATTRS = {"feature_flag.key": "f", "feature_flag.result.variant": "on", "x": "y" * 50}


def test_a_prebuilt_event_equals_the_sdks_own() -> None:
    """Name and attributes are those add_event would record, and each event has its own
    timestamp; the attributes are validated once and shared."""
    tracer = TracerProvider().get_tracer("t")
    span = tracer.start_span("s")
    event = SpanEvent("feature_flag.evaluation", ATTRS)
    event.add_to(span)
    event.add_to(span)
    span.add_event("feature_flag.evaluation", ATTRS)
    ours, again, theirs = span.events
    assert (ours.name, dict(ours.attributes or {})) == (theirs.name, dict(theirs.attributes or {}))
    assert ours.attributes is again.attributes
    assert ours.timestamp <= again.timestamp <= theirs.timestamp


def test_span_limits_are_honoured() -> None:
    """With lower limits (attributes per event, value length) the prebuilt event is cut the
    way the SDK cuts its own."""
    limits = SpanLimits(max_event_attributes=2, max_attribute_length=10)
    span = TracerProvider(span_limits=limits).get_tracer("t").start_span("s")
    SpanEvent("e", ATTRS).add_to(span)
    span.add_event("e", ATTRS)
    ours, theirs = span.events
    assert dict(ours.attributes or {}) == dict(theirs.attributes or {})
    assert len(ours.attributes or {}) == 2


def test_a_span_that_overrides_add_event_gets_the_public_call() -> None:
    """A subclass of the SDK span with its own add_event is called through it."""
    calls: list[str] = []

    class Custom(SdkSpan):
        def add_event(self, name: str, attributes: Any = None, timestamp: Any = None) -> None:
            calls.append(name)
            super().add_event(name, attributes, timestamp)

    span = TracerProvider().get_tracer("t").start_span("s")
    span.__class__ = Custom
    SpanEvent("e", ATTRS).add_to(span)
    assert calls == ["e"]
    assert len(span.events) == 1


def test_when_the_sdk_internals_fail_the_public_call_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the fast path raises (say the SDK's Event changed its signature), the event is still
    added, through add_event, and that span class uses add_event from then on."""
    span = TracerProvider().get_tracer("t").start_span("s")

    def changed_event(*args: Any) -> Any:
        raise TypeError("Event() takes other arguments in this SDK")

    monkeypatch.setattr(_telemetry_spans, "_fast", {type(span): changed_event})
    SpanEvent("e", ATTRS).add_to(span)
    assert _telemetry_spans._fast[type(span)] is None
    assert [e.name for e in span.events] == ["e"]
    SpanEvent("f", ATTRS).add_to(span)
    assert [e.name for e in span.events] == ["e", "f"]
