"""Pure ASGI middleware: ``app.add_middleware(RampupMiddleware, flags="flags.toml")``.

A callable over (scope, receive, send), never ``BaseHTTPMiddleware``: it binds a per-request
:class:`~rampup.Flags` as ``rampup.flags`` and ``scope["state"]["flags"]`` (Starlette's
``request.state.flags``), and adds its headers by editing ``http.response.start`` on the way
out. ``websocket`` and ``lifespan`` scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextvars import Token
from typing import Any

from ._request import _POLICY, RequestFlags, Runtime, Settings
from .context import Flags, _current
from .engine import Snapshot
from .overrides import reader_for
from .subject import (
    _ATTRIBUTE_BYTES,
    ViewAttributes,
    attribute_header_bytes,
    find_cookie,
    header_bytes,
)
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SCOPE_KEY", "ASGIView", "RampupMiddleware"]

log = logging.getLogger("rampup")

SCOPE_KEY = "rampup.flags"
#: Bound when opening a request failed (e.g. a custom source raised): every flag reads as
#: unknown (off), so a view that reads flags still gets its own response, never a 500.
_FALLBACK = Snapshot.build({}, {}, "<rampup unavailable>")
#: Header values longer than this are ignored as attributes (they are not ids or flags).
MAX_HEADER = 8 * 1024


class ASGIView(ViewAttributes):
    """A :class:`~rampup.subject.RequestView` over an ASGI scope; parses on demand."""

    __slots__ = ("_cookie", "_index", "_query", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._cookie: str | None = None
        self._query: dict[str, str] | None = None
        self._index: dict[bytes, bytes] | None = None

    def _headers(self) -> dict[bytes, bytes] | None:
        """Raw name -> raw value, built in one C call at the first lookup; None when a name
        repeats (rare: then each lookup scans, to join the repeats)."""
        index = self._index
        if index is None:
            raw = self.scope.get("headers", ())
            if type(raw) is not list:
                raw = list(raw)
            full = dict(raw)
            index = self._index = full if len(full) == len(raw) else {}
        return index or None

    def get(self, name: str, default: Any = None) -> Any:
        """The attribute ``name``, or ``default``; ``header.<name>`` straight from the header
        index (conditions on headers are the common case in flag files), not through
        :meth:`header`: a subclass that overrides ``header`` must override this too."""
        raw = _ATTRIBUTE_BYTES.get(name)  # attribute_header_bytes' memo, read here first
        if raw is None:
            raw = attribute_header_bytes(name)
        index = self._headers() if raw else None
        if index is None:  # not a header, or a repeated header name: the generic lookup
            return ViewAttributes.get(self, name, default)
        v = index.get(raw)
        return default if v is None or len(v) > MAX_HEADER else v.decode("latin-1")

    def header(self, name: str) -> str | None:
        """The header's value (repeats joined with ", "), or None if absent or oversized."""
        wanted = header_bytes(name)
        index = self._headers()
        if index is not None:
            v = index.get(wanted)
            return None if v is None or len(v) > MAX_HEADER else v.decode("latin-1")
        found = [
            v.decode("latin-1")
            for k, v in self.scope.get("headers", ())
            if k == wanted and len(v) <= MAX_HEADER
        ]
        if not found:
            return None
        return found[0] if len(found) == 1 else ", ".join(found)

    def cookie(self, name: str) -> str | None:
        """The cookie's value from the Cookie header(s), or None."""
        c = self._cookie
        if c is None:
            index = self._headers()
            if index is not None:
                raw = index.get(b"cookie")
                c = raw.decode("latin-1") if raw is not None else ""
            else:  # several Cookie headers (HTTP/2) are joined with "; " (RFC 9113 8.2.3)
                parts = [
                    v.decode("latin-1") for k, v in self.scope.get("headers", ()) if k == b"cookie"
                ]
                c = "; ".join(parts)
            self._cookie = c
        return find_cookie(c, name)

    def query(self, name: str) -> str | None:
        """The query parameter's value, or None (only the first 8 KB are parsed)."""
        q = self._query
        if q is None:
            from urllib.parse import parse_qsl

            raw = self.scope.get("query_string", b"")
            q = self._query = (
                dict(parse_qsl(raw[:8192].decode("latin-1"), keep_blank_values=True)) if raw else {}
            )
        return q.get(name)

    @property
    def path(self) -> str:
        """The request path, prefixed with ``root_path`` when the server left it out."""
        # Servers now put the mount point in ``path`` too (uvicorn, Starlette's Mount); older
        # ones sent it only in ``root_path``. Prefix it only when it is not there already.
        path = str(self.scope.get("path", ""))
        root = str(self.scope.get("root_path", ""))
        return path if not root or path.startswith(root) else root + path

    @property
    def method(self) -> str:
        """The HTTP method (``GET`` if the scope has none)."""
        return str(self.scope.get("method", "GET"))

    @property
    def host(self) -> str:
        """The Host header, or an empty string."""
        return self.header("host") or ""

    @property
    def client_ip(self) -> str | None:
        """The client's address from ``scope["client"]``, or None."""
        client = self.scope.get("client")
        return str(client[0]) if client else None

    @property
    def scheme(self) -> str:
        """The URL scheme from the scope (``http`` if it has none)."""
        return str(self.scope.get("scheme", "http"))

    @property
    def debug(self) -> bool | None:
        """The app's debug mode when the framework tells it (Starlette and FastAPI put the
        application in ``scope["app"]``, which is ``request.app``), else None. Read lazily,
        by the override policy only, so a plain ASGI app pays nothing for it."""
        value = getattr(self.scope.get("app"), "debug", None)
        return value if isinstance(value, bool) else None


class RampupMiddleware:
    """Wrap any ASGI app: ``RampupMiddleware(app, flags="flags.toml", **options)``.

    Options are the fields of :class:`rampup._request.Settings`. With Starlette/FastAPI use
    ``app.add_middleware(RampupMiddleware, flags=...)``; ``app`` is positional-only so that
    this class type-checks as Starlette's middleware factory (which forwards ``**options``).
    """

    __slots__ = ("app", "debug_unknown", "runtime")

    def __init__(
        self,
        app: ASGIApp | None = None,
        /,
        flags: Any = None,
        *,
        runtime: Runtime | None = None,
        **options: Any,
    ) -> None:
        if app is None:  # Starlette < 0.35 builds middleware as cls(app=app, **options)
            app = options.pop("app", None)
            if app is None:
                raise TypeError("RampupMiddleware needs the ASGI app to wrap")
        self.app: ASGIApp = app
        if runtime is None:
            settings = Settings.from_options(options)
            # Without debug=, the override policy waits for the first request, where
            # Starlette's app.debug is visible (learn_debug), so it is decided (and warned
            # about) once, knowing the mode.
            reader = _POLICY
            if settings.debug is None:
                reader_for(dataclasses.replace(settings, debug=True))  # bad policy: fail now
                reader = None
            # Starlette's add_middleware builds this at the first ASGI call (the lifespan
            # startup, which uvicorn by default lets fail quietly): raising then would turn
            # every request into a 500, so a bad flag file serves no flags until it is
            # fixed. Built at import time (wrapping the app), it raises and fails the deploy.
            runtime = Runtime(flags, settings, reader, strict=not _in_event_loop())
        self.runtime = runtime
        #: debug= was not given: learn it from Starlette's scope["app"] at the first request
        self.debug_unknown = runtime.settings.debug is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        if self.debug_unknown:
            self.debug_unknown = False
            runtime.learn_debug(bool(ASGIView(scope).debug))  # not Starlette: not debug
        try:
            f = runtime.opener(scope, ASGIView)
            scope[SCOPE_KEY] = f
            state = scope.get("state")
            if state is None:
                scope["state"] = {"flags": f}
            else:
                state["flags"] = f
        except Exception:
            log.exception("rampup: could not open the request; every flag reads as off")
            await self._serve_fallback(scope, receive, send)
            return
        if runtime.needs_end:
            await self._serve_reporting(f, scope, receive, send)
            return

        eager = runtime.eager_headers

        # A plain function returning send's awaitable: no extra coroutine per message.
        def _send(message: Message) -> Any:
            if message["type"] == "http.response.start" and (
                f.minted is not None or f.override_state is not None or eager
            ):
                extra = runtime.response_headers(f)
                if extra:
                    message = _with_headers(message, extra)
            return send(message)

        token = _current.set(f)
        try:
            await self.app(scope, receive, _send)
        finally:
            _unbind(token)
            _release(scope, f)

    async def _serve_reporting(
        self, f: RequestFlags, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The same, for when listeners want each request's status and error."""
        runtime = self.runtime
        status: int | None = None

        def _send(message: Message) -> Any:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message.get("status")
                if runtime.has_headers(f):
                    extra = runtime.response_headers(f)
                    if extra:
                        message = _with_headers(message, extra)
            return send(message)

        token = _current.set(f)
        try:
            await self.app(scope, receive, _send)
        except BaseException as exc:
            runtime.finish(f, status, exc)
            raise
        else:
            runtime.finish(f, status, None)
        finally:
            _unbind(token)
            _release(scope, f)

    async def _serve_fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        f = Flags(_FALLBACK)
        scope[SCOPE_KEY] = f
        scope.setdefault("state", {})["flags"] = f
        token = _current.set(f)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _release(scope: Scope, f: Flags) -> None:
    """Drop the scope's references to the request's Flags once the app has returned. The
    Flags refers to its scope, so leaving them would make every request's scope a cycle that
    only the garbage collector frees (measured: twice the p99 latency under uvicorn)."""
    scope.pop(SCOPE_KEY, None)
    state = scope.get("state")
    if state is not None and state.get("flags") is f:
        del state["flags"]


def _unbind(token: Token[Flags]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # reset from another context: a server quirk, not the app's problem
        log.warning("rampup: request context ended in another context")


def _with_headers(message: Message, extra: list[tuple[str, str]]) -> Message:
    """``http.response.start`` with rampup's headers appended; unchanged if they cannot be
    encoded (a misconfigured cookie domain must not break the response)."""
    try:
        added = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    except UnicodeEncodeError:
        log.exception("rampup: response headers are not latin-1; sending none")
        return message
    return {**message, "headers": [*message.get("headers", ()), *added]}
