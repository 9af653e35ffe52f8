"""Which listeners a middleware installs: the ``telemetry`` option (``"auto"`` by default).

:func:`listeners_for` is the one place that decides it. Every request is counted in the
process's outcome book (``rampup.outcomes.book``); and when ``opentelemetry-api`` is
importable, :class:`rampup.telemetry.RampupTelemetry` tags traces and exports the book's
numbers, with no extra argument. Without the API nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .outcomes import OutcomeBook, OutcomeRecorder

__all__ = ["TELEMETRY_CHOICES", "listeners_for"]

#: the string values of the ``telemetry`` option (it also takes True, False or a listener)
TELEMETRY_CHOICES = ("auto", "on", "off")


def listeners_for(telemetry: Any, listeners: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The listeners of one middleware: ``listeners`` as given, then an
    :class:`~rampup.outcomes.OutcomeRecorder` (unless one is given) and the telemetry listener.

    ``telemetry``: ``"auto"`` (the process's shared ``RampupTelemetry`` when opentelemetry-api
    is importable, else none), ``True``/``"on"`` (the same, and an error naming the extra to
    install when it is not), ``False``/``"off"``/``None`` (none), or a listener instance (that
    one, e.g. ``RampupTelemetry(mode="attributes")``). A ``RampupTelemetry`` already in
    ``listeners`` is kept, and none is added. The recorder feeds the book of the first
    listener that has one (``RampupTelemetry(book=...)``), else the process's book.
    """
    out = list(listeners)
    if telemetry is True:
        telemetry = "on"
    elif telemetry is False or telemetry is None:
        telemetry = "off"
    if isinstance(telemetry, str):
        if telemetry not in TELEMETRY_CHOICES:
            raise ValueError(
                f"rampup: telemetry={telemetry!r}; expected one of 'auto', 'on', 'off', True, "
                "False, or a listener such as rampup.telemetry.RampupTelemetry(...)"
            )
        given = any(getattr(lst, "rampup_telemetry", False) for lst in out)
        if telemetry != "off" and not given and (telemetry == "on" or _api_importable()):
            from .telemetry import shared  # imports OpenTelemetry: only now

            out.append(shared())
    elif callable(getattr(telemetry, "on_decision", None)):
        out.append(telemetry)
    else:
        raise ValueError(
            f"rampup: telemetry={telemetry!r} is not a listener (no on_decision method); "
            "pass 'auto', 'on', 'off', True, False or e.g. RampupTelemetry(...)"
        )
    if not any(isinstance(lst, OutcomeRecorder) for lst in out):
        books = (getattr(lst, "book", None) for lst in out)
        out.append(OutcomeRecorder(next((b for b in books if isinstance(b, OutcomeBook)), None)))
    return tuple(out)


def _api_importable() -> bool:
    """Is opentelemetry-api installed (and not blocked)? Imports nothing when it is not."""
    from importlib.util import find_spec

    try:
        return find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False
