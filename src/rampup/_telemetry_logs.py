"""Feature flag evaluations as log-based events (``RampupTelemetry(event_logs=True)``).

The newest semantic conventions describe ``feature_flag.evaluation`` as an event emitted through
the OpenTelemetry logs API (a LogRecord with an event name). That API is still marked
experimental in Python (``opentelemetry._logs``); this module adapts to the installed version:
``event_name`` and ``context`` are passed when the LogRecord accepts them, else the event name
goes into an ``event.name`` attribute and the trace ids are set one by one (older APIs).
"""

from __future__ import annotations

import inspect
from typing import Any

from opentelemetry import trace

try:
    from opentelemetry._logs import LogRecord, get_logger
except ImportError as exc:  # pragma: no cover - an old opentelemetry-api without logs
    raise ValueError(
        "rampup: event_logs=True needs the OpenTelemetry logs API (opentelemetry._logs), "
        "which this opentelemetry-api does not have; upgrade it"
    ) from exc

__all__ = ["EventLogger"]

_PARAMS = inspect.signature(LogRecord.__init__).parameters
_HAS_EVENT_NAME = "event_name" in _PARAMS
_HAS_CONTEXT = "context" in _PARAMS


class EventLogger:
    """Emits one log-based event per flag evaluation, linked to the request's span."""

    __slots__ = ("_logger",)

    def __init__(self, version: str, provider: Any = None) -> None:
        self._logger = get_logger("rampup", version, provider)

    def emit(self, name: str, attributes: dict[str, Any], span: Any) -> None:
        """Emit event ``name``; ``span`` (or the current span when None) gives the trace ids."""
        kwargs: dict[str, Any] = {}
        if _HAS_EVENT_NAME:
            kwargs["event_name"] = name
            kwargs["attributes"] = attributes
        else:
            kwargs["attributes"] = {**attributes, "event.name": name}
        if span is not None:
            if _HAS_CONTEXT:
                kwargs["context"] = trace.set_span_in_context(span)
            else:
                sc = span.get_span_context()
                kwargs.update(trace_id=sc.trace_id, span_id=sc.span_id, trace_flags=sc.trace_flags)
        self._logger.emit(LogRecord(**kwargs))
