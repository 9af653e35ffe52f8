"""The ``rampup.override`` W3C baggage entry that ``RampupTelemetry(baggage=...)`` sends on.

The value uses the override header's format (``flag=variant`` entries and signed tokens, comma
separated), so a downstream service running rampup with ``override_baggage=True`` reads it
under its own override policy (``rampup.overrides``): unsigned entries count only where that
policy accepts unsigned overrides; a signed token the request carried is forwarded as such,
unless it is bound to a subject (its payload names the subject key, which must not travel).

Only variant names travel. The value merges what arrived from upstream (the baggage the
OpenTelemetry propagator extracted), so variants for flags this service never reads still
reach the services that do; ours come first, and the first mention of a flag wins downstream.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context

from ._signing import BAGGAGE_KEY, PREFIX, verify

__all__ = ["BAGGAGE_KEY", "MAX_VALUE", "Carrier"]

#: Longest value we send: well inside W3C's 4096 bytes per entry and 8192 per header, as other
#: services share the header.
MAX_VALUE = 1024
_MAX_TOKENS = 4


class Carrier:
    """The baggage entry of one request: built up as decisions are made, then undone."""

    __slots__ = ("ctx", "inbound", "pairs", "token", "tokens")

    def __init__(self, flags: Any) -> None:
        self.pairs: dict[str, str] = {}
        self.tokens = _forwardable_tokens(flags)
        raw = otel_baggage.get_baggage(BAGGAGE_KEY)
        self.inbound = _items(raw) if isinstance(raw, str) and len(raw) <= MAX_VALUE else []
        self.token: Any = None  #: the first attach's token: detaching it restores the request's
        self.ctx: Any = None  #: the context we attached last

    def add(self, key: str, variant: str) -> None:
        """Serve ``key=variant`` downstream from now on (attaches a new context)."""
        if self.pairs.get(key) == variant:
            return
        self.pairs[key] = variant
        value = self.value()
        if value is None:
            return
        ctx = otel_baggage.set_baggage(BAGGAGE_KEY, value)
        token = otel_context.attach(ctx)
        if self.token is None:
            self.token = token
        self.ctx = ctx

    def value(self) -> str | None:
        """Our tokens and entries, then upstream's items for flags we did not mention."""
        ours = [f"{k}={v}" for k, v in self.pairs.items()]
        seen = set(self.pairs)
        items = [*self.tokens, *ours]
        for item in self.inbound:
            flag = item.partition("=")[0].strip() if "=" in item else None
            if flag in seen or item in items:
                continue
            items.append(item)
        out: list[str] = []
        size = 0
        for item in items:
            size += len(item) + 1
            if size > MAX_VALUE + 1:
                break
            out.append(item)
        return ",".join(out) or None

    def close(self) -> None:
        """Undo our baggage, if our context is still the current one. When the view ran in a
        copied context (a thread pool, a task), that copy is gone and our baggage with it."""
        if self.token is not None and otel_context.get_current() is self.ctx:
            otel_context.detach(self.token)
        self.token = self.ctx = None


def _items(value: str) -> list[str]:
    return [i for i in (p.strip() for p in value.split(",")) if i]


def _forwardable_tokens(flags: Any) -> list[str]:
    """The signed override tokens this request carried (header or cookie) that verify with
    this app's keys and are not bound to a subject; [] unless the request was authorized."""
    state = getattr(flags, "override_state", None)
    runtime = getattr(flags, "runtime", None)
    reader = getattr(runtime, "overrides", None)
    if runtime is None or reader is None or not getattr(state, "authorized", False):
        return []
    settings, view = reader.settings, flags.view
    raw = [view.header(settings.override_header), view.cookie(settings.override_cookie)]
    now = time.time()
    out: list[str] = []
    for value in raw:
        if not value or len(value) > MAX_VALUE:
            continue
        for item in _items(value.replace("\\054", ",")):
            if not item.startswith(PREFIX) or "=" in item or item in out:
                continue
            token, _ = verify(item, reader.keys, now)
            if token is not None and token.subject is None:
                out.append(item)
                if len(out) >= _MAX_TOKENS:
                    return out
    return out
