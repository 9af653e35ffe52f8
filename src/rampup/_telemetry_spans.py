"""Adding the ``feature_flag.evaluation`` span event cheaply.

The SDK's ``Span.add_event`` validates the attributes into a new ``BoundedAttributes`` on every
call: about 3 us of the 4 us an event costs, paid per flag per request for attributes that
are the same for every request served that variant. :class:`SpanEvent` validates them once
(per set of span limits) and hands the SDK span a prebuilt, immutable ``Event`` body through
``Span._add_event``, the method ``add_event`` itself ends in: an event then costs about what a
span attribute does, which is why events (the semantic conventions' form) stay the default.

Only spans of the SDK's own class whose ``add_event`` is the SDK's are taken this way; any
other span (a vendor's, a subclass that overrides ``add_event``, a future SDK without
``_add_event``) gets the public ``add_event``. Nothing of the SDK is imported until a span of it
is seen, so with the API alone this module imports only the API.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry.attributes import BoundedAttributes

__all__ = ["SpanEvent", "event_adder"]

log = logging.getLogger("rampup")

#: span class -> (the SDK's Event class) when spans of that class take the fast path, else None
_fast: dict[type, Any] = {}
_UNSEEN: Any = object()


def _classify(cls: type) -> Any:
    mod = sys.modules.get("opentelemetry.sdk.trace")
    sdk_span = getattr(mod, "Span", None)
    event = getattr(mod, "Event", None)
    ok = (
        isinstance(sdk_span, type)
        and issubclass(cls, sdk_span)
        and event is not None
        and getattr(cls, "add_event", None) is getattr(sdk_span, "add_event", 0)
        and callable(getattr(cls, "_add_event", None))
    )
    _fast[cls] = event if ok else None
    return _fast[cls]


class SpanEvent:
    """One event's name and attributes, validated once per span limits."""

    __slots__ = ("attributes", "bounded", "limits", "name")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.limits: Any = None
        self.bounded: Any = None

    def add_to(self, span: Any) -> None:
        """Add this event to ``span`` (timestamped now)."""
        cls = type(span)
        event = _fast.get(cls, _UNSEEN)
        if event is _UNSEEN:
            event = _classify(cls)
        if event is None:
            span.add_event(self.name, self.attributes)
            return
        try:
            limits = span._limits
            bounded = self.bounded
            if self.limits is not limits:
                bounded = self.bounded = BoundedAttributes(
                    limits.max_event_attributes,
                    self.attributes,
                    immutable=True,
                    max_value_len=limits.max_attribute_length,
                )
                self.limits = limits
            span._add_event(event(self.name, bounded))
        except Exception:  # the SDK's internals changed: the public way from now on
            log.debug("rampup: prebuilt span events unavailable; using add_event", exc_info=True)
            _fast[cls] = None
            span.add_event(self.name, self.attributes)


def event_adder(name: str, attributes: dict[str, Any]) -> SpanEvent:
    """A :class:`SpanEvent` for ``name`` with ``attributes``."""
    return SpanEvent(name, attributes)
