"""The ``feature_flag.evaluation`` span event, built once per (flag, variant).

The attributes of an evaluation event are the same for every request served that variant, so
the dict is built once and handed to the span's public ``add_event`` on each request. We do
not reach into the SDK's private span methods to skip its per-call validation: that would
break silently with any SDK release, and the project's rule is no private attributes of
other libraries. The cost of the public call is why the span mode is a choice (see
``docs/telemetry.md``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SpanEvent", "event_adder"]


class SpanEvent:
    """One event's name and attributes, ready to add to any span."""

    __slots__ = ("attributes", "name")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes

    def add_to(self, span: Any) -> None:
        """Add this event to ``span`` (timestamped now) through the public API."""
        span.add_event(self.name, self.attributes)


def event_adder(name: str, attributes: dict[str, Any]) -> SpanEvent:
    """A :class:`SpanEvent` for ``name`` with ``attributes``."""
    return SpanEvent(name, attributes)
