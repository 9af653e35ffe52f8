"""The per-request :class:`Flags` object and the ``rampup.flags`` proxy over a ContextVar.

A Flags object is created per request over one snapshot. It evaluates nothing until a view
reads a flag, decides each flag at most once (so a request never sees two variants of one flag,
even if the file is reloaded meanwhile), and never raises out of a read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import partial
from types import MappingProxyType
from typing import Any, Protocol

from .engine import Snapshot
from .errors import UnboundFlagsError
from .model import Decision, Reason, Subject

__all__ = [
    "NOTHING_FORCED",
    "Flags",
    "Listener",
    "TestHook",
    "bind",
    "bound",
    "current",
    "current_if_any",
    "current_or_none",
    "flags",
    "set_test_hook",
    "unbind",
]

log = logging.getLogger("rampup")

_NOBODY = Subject(None)
_NO_FORCED: Mapping[str, str] = MappingProxyType({})

#: (flags, key) -> the Decision a test forces for ``key``, or None to decide it as usual.
TestHook = Callable[["Flags", str], "Decision | None"]

# Read once per decision; None (the only value outside tests) costs a single global read.
_test_hook: TestHook | None = None


def set_test_hook(hook: TestHook | None) -> None:
    """Install the function every :class:`Flags` asks first when deciding a flag (None removes
    it). :mod:`rampup.testing` forces variants through this; applications have no use for it.
    """
    global _test_hook
    _test_hook = hook


class Listener(Protocol):
    """**Protocol:** told about every decision a request makes (telemetry is one).

    Listener calls are wrapped: an exception is logged and never reaches the app.
    """

    def on_decision(self, flags: Flags, decision: Decision) -> None:
        """Called once per flag per request, right after it was decided."""


class Flags:
    """Lazy, memoized flag decisions for one request (or one subject) over one snapshot.

    ``subject`` may be a :class:`Subject` or a zero-argument callable that builds one on first
    use. Adapters create these for you; build one yourself for background jobs::

        Flags(snapshot, Subject("user-42", {"plan": "pro"})).enabled("new-checkout")
    """

    __slots__ = ("_decisions", "_forced", "_subject", "_subject_fn", "listeners", "snapshot")

    def __init__(
        self,
        snapshot: Snapshot,
        subject: Subject | Callable[[], Subject] | None = None,
        listeners: tuple[Listener, ...] = (),
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        """``overrides`` forces variants (flag -> variant) as a QA override would: reason
        OVERRIDE, refused by killed and non-overridable flags."""
        self.snapshot = snapshot
        #: told of each decision; a listener may drop itself from the tuple for the rest of
        #: the request (telemetry does when there is nothing to record)
        self.listeners = listeners
        self._decisions: dict[str, Decision] = {}
        #: flag -> forced variant; None until read (a request reads its overrides lazily)
        self._forced: Mapping[str, str] | None = dict(overrides) if overrides else _NO_FORCED
        if subject is None or isinstance(subject, Subject):
            self._subject: Subject | None = subject or _NOBODY
            self._subject_fn: Callable[[], Subject] | None = None
        else:
            self._subject = None
            self._subject_fn = subject

    # -- reading flags ---------------------------------------------------------------------
    def decision(self, key: str) -> Decision:
        """The full :class:`Decision` for ``key`` (variant, value, reason, rule index)."""
        d = self._decisions.get(key)
        return d if d is not None else self._decide(key)

    def enabled(self, key: str) -> bool:
        """True when ``key`` serves a truthy value (``on`` for boolean flags)."""
        d = self._decisions.get(key)
        return bool((d if d is not None else self._decide(key)).value)

    def variant(self, key: str) -> str | None:
        """The name of the variant served, or None for an unknown flag."""
        return self.decision(key).variant

    def value(self, key: str, default: Any = None) -> Any:
        """The value served, or ``default`` for an unknown flag."""
        d = self.decision(key)
        return default if d.reason is Reason.UNKNOWN_FLAG else d.value

    def all(self) -> dict[str, Any]:
        """Every flag's value for this subject (decides any not read yet). For browser code use
        :meth:`client`, which holds only the flags marked ``client = true``."""
        return {key: self.decision(key).value for key in self.snapshot.flags}

    def client(self) -> dict[str, Any]:
        """The values of the flags marked ``client = true``, for browser code: only values
        (never rules, segments, other flags or the subject), keyed by flag."""
        return {key: self.decision(key).value for key in self.snapshot.client_keys}

    @property
    def subject(self) -> Subject:
        """The subject of this request, resolved on first use."""
        s = self._subject
        return s if s is not None else self._resolve()

    @property
    def decisions(self) -> Mapping[str, Decision]:
        """The decisions made so far in this request, in the order they were made."""
        return self._decisions

    # -- internals -------------------------------------------------------------------------
    def override_for(self, key: str) -> str | None:
        """The variant forced for ``key`` (by ``overrides=``, or a request's QA overrides), or
        None."""
        forced = self._forced
        if forced is None:
            forced = self._read_forced()
        return forced.get(key)

    def _read_forced(self) -> Mapping[str, str]:
        # Adapters' Flags read the request's overrides here, once; never raises.
        self._forced = _NO_FORCED
        return _NO_FORCED

    def _resolve(self) -> Subject:
        fn = self._subject_fn
        try:
            s = fn() if fn is not None else _NOBODY
        except Exception:
            log.exception(
                "rampup: resolving the request's subject failed; treating it as anonymous"
            )
            s = _NOBODY
        self._subject = s
        return s

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the memoized decisions of ``keys``, so their next read decides again.

        For :mod:`rampup.testing`, whose forcing may begin or end after a read; in a request
        this would let one flag serve two variants.
        """
        for key in keys:
            self._decisions.pop(key, None)

    def _decide(self, key: str) -> Decision:
        # The one decide path: a test's forced variant, else the snapshot, given the request's
        # override (if any) and the subject as a callable: the snapshot resolves it only when a
        # rule needs it, so a request reading only constant flags mints no anonymous id.
        hook = _test_hook
        # Outside any try on purpose: forcing a typo'd flag in a test must fail that test, not
        # serve a default.
        d = hook(self, key) if hook is not None else None
        if d is None:
            try:
                override = None if self._forced is _NO_FORCED else self.override_for(key)
            except Exception as exc:
                log.exception(
                    "rampup: reading the overrides of %r failed; serving its default", key
                )
                d = self.snapshot.error_decision(key, exc)
            else:
                subject = self._subject
                d = self.snapshot.evaluate(
                    key, subject if subject is not None else self._resolve, None, override
                )
        self._decisions[key] = d
        if self.listeners:
            for listener in self.listeners:
                try:
                    listener.on_decision(self, d)
                except Exception:
                    log.exception("rampup: listener %r failed", listener)
        return d

    def __repr__(self) -> str:
        return f"<Flags decided={list(self._decisions)} over {self.snapshot.origin!r}>"


_current: ContextVar[Flags] = ContextVar("rampup.flags")
_get = _current.get

_UNBOUND = (
    "rampup.flags was used outside a request. Add the middleware for your framework "
    "(rampup.flask.Rampup, rampup.django.RampupMiddleware, rampup.asgi.RampupMiddleware or "
    "rampup.wsgi.RampupMiddleware), or outside a request build Flags(snapshot, subject) "
    "yourself, or in tests use `with rampup.testing.bound_flags(...)`."
)


#: Where else an adapter can find the request's Flags when the ContextVar is not set, e.g.
#: Flask's request context inside ``stream_with_context`` (see ``register_fallback``).
_fallbacks: list[Callable[[], Flags | None]] = []


def register_fallback(find: Callable[[], Flags | None]) -> None:
    """Let ``rampup.flags`` ask ``find()`` for the request's Flags when none is bound (used by
    adapters whose framework keeps its own request context, e.g. Flask). Idempotent."""
    if find not in _fallbacks:
        _fallbacks.append(find)


def current() -> Flags:
    """The Flags of the current request; raises :class:`UnboundFlagsError` outside one."""
    try:
        return _current.get()
    except LookupError:
        for find in _fallbacks:
            f = find()
            if f is not None:
                return f
        raise UnboundFlagsError(_UNBOUND) from None


#: Make a Flags the current one; pass the token to :func:`unbind` (or, in adapters,
#: :func:`rampup.lifecycle.unbind`) in ``finally``. The ContextVar's own ``set``: no extra
#: frame on the request path.
bind: Callable[[Flags], Token[Flags]] = _current.set

#: The Flags bound in this context, or None (the fallbacks of :func:`current` not asked).
current_or_none: Callable[[], Flags | None] = partial(_current.get, None)

#: The "nothing forced" mapping a Flags starts with when no override can apply.
NOTHING_FORCED: Mapping[str, str] = _NO_FORCED


def current_if_any() -> Flags | None:
    """The Flags of the current request, or None outside one: like :func:`current` (the
    fallbacks asked too), but never raises; for code that runs both in and out of requests,
    e.g. rampup.openfeature's provider."""
    f = _current.get(None)
    if f is not None or not _fallbacks:
        return f
    try:
        return current()
    except UnboundFlagsError:
        return None


def unbind(token: Token[Flags]) -> None:
    """Undo :func:`bind`. A token from another context is a nesting bug, and says so."""
    try:
        _current.reset(token)
    except ValueError as exc:
        raise RuntimeError(
            "rampup: request context popped out of order (was a Flags bound in another "
            "thread or task?)"
        ) from exc


@contextmanager
def bound(f: Flags) -> Iterator[Flags]:
    """Bind ``f`` as ``rampup.flags`` for the ``with`` block."""
    token = _current.set(f)
    try:
        yield f
    finally:
        unbind(token)


class _FlagsProxy:
    """``rampup.flags``: the current request's :class:`Flags`, wherever you are in it."""

    __slots__ = ()

    def enabled(self, key: str) -> bool:
        """True when ``key`` serves a truthy value in the current request."""
        # Flags.enabled inlined: this is the read views make most, and a frame is ~10 % of it.
        f = _get(None)
        if f is None:
            f = current()
        d = f._decisions.get(key)
        return bool((d if d is not None else f._decide(key)).value)

    def variant(self, key: str) -> str | None:
        """The variant of ``key`` served in the current request."""
        f = _get(None)
        return (f if f is not None else current()).variant(key)

    def value(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` served in the current request."""
        f = _get(None)
        return (f if f is not None else current()).value(key, default)

    def decision(self, key: str) -> Decision:
        """The :class:`Decision` for ``key`` in the current request."""
        f = _get(None)
        return (f if f is not None else current()).decision(key)

    def all(self) -> dict[str, Any]:
        """Every flag's value for the current request."""
        return current().all()

    def client(self) -> dict[str, Any]:
        """The values of the current request's ``client = true`` flags (see Flags.client)."""
        return current().client()

    @property
    def subject(self) -> Subject:
        """The current request's subject."""
        return current().subject

    @property
    def bound(self) -> bool:
        """True inside a request (a Flags is bound)."""
        try:
            current()
        except UnboundFlagsError:
            return False
        return True

    def __repr__(self) -> str:
        f = _current.get(None)
        return f"<rampup.flags proxy to {f!r}>" if f is not None else "<rampup.flags (unbound)>"


flags = _FlagsProxy()
