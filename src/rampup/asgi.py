"""Pure ASGI middleware: ``app.add_middleware(RampupMiddleware, flags="flags.toml")``.

A callable over (scope, receive, send), never ``BaseHTTPMiddleware``: it binds a per-request
:class:`~rampup.Flags` as ``rampup.flags`` and ``scope["state"]["flags"]`` (Starlette's
``request.state.flags``), and adds its headers by editing ``http.response.start`` on the way
out. Translates only: the request lifecycle is :mod:`rampup.lifecycle`.

``websocket`` scopes get flags too, for the whole connection, with the subject read from the
handshake's headers and cookies. No cookie can be set on a websocket, so a visitor without a
``rampup_id`` cookie (from an earlier HTTP response) gets a new anonymous id per connection.
``lifespan`` scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .lifecycle import ResponseHeaders, Runtime, bind, unbind
from .options import Options, OptionsDict
from .subject import MAX_HEADER, find_cookie, header_bytes
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SCOPE_KEY", "ASGIView", "RampupMiddleware"]

log = logging.getLogger("rampup")

SCOPE_KEY = "rampup.flags"


class ASGIView:
    """A :class:`~rampup.subject.RequestView` over an ASGI scope; parses on demand."""

    __slots__ = ("_cookie", "_query", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._cookie: str | None = None
        self._query: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """The header's value (repeats joined with ", "), or None if absent or oversized."""
        wanted = header_bytes(name)
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
        if c is None:  # several Cookie headers (HTTP/2) are joined with "; " (RFC 9113 8.2.3)
            c = self._cookie = "; ".join(
                v.decode("latin-1") for k, v in self.scope.get("headers", ()) if k == b"cookie"
            )
        return find_cookie(c, name)

    def query(self, name: str) -> str | None:
        """The query parameter's value, or None (only the first 8 KB are parsed)."""
        q = self._query
        if q is None:
            from urllib.parse import parse_qsl

            raw = self.scope.get("query_string", b"")[:8192].decode("latin-1")
            q = self._query = dict(parse_qsl(raw, keep_blank_values=True)) if raw else {}
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
        """The HTTP method (``GET`` if the scope has none, as in a websocket handshake)."""
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


def _debug_of(scope: Scope) -> bool:
    """The app's debug mode when the framework tells it (Starlette and FastAPI put the app in
    ``scope["app"]``), else False. Asked once, at the first request."""
    return getattr(scope.get("app"), "debug", None) is True


class RampupMiddleware:
    """Wrap any ASGI app: ``RampupMiddleware(app, flags="flags.toml", **options)``.

    Options are the fields of :class:`rampup.Options`. With Starlette/FastAPI use
    ``app.add_middleware(RampupMiddleware, flags=...)``; ``app`` is positional-only so that
    this class type-checks as Starlette's middleware factory (which forwards ``**options``).
    """

    __slots__ = ("app", "runtime")

    def __init__(
        self, app: ASGIApp | None = None, /, flags: Any = None, **options: Unpack[OptionsDict]
    ) -> None:
        if app is None:  # Starlette < 0.35 builds middleware as cls(app=app, **options)
            app = options.pop("app", None)  # type: ignore[typeddict-item]
            if app is None:
                raise TypeError("RampupMiddleware needs the ASGI app to wrap")
        self.app: ASGIApp = app
        # Starlette's add_middleware builds this at the first ASGI call (the lifespan
        # startup, which uvicorn by default lets fail quietly): raising then would turn
        # every request into a 500, so a bad flag file serves no flags until it is
        # fixed. Built at import time (wrapping the app), it raises and fails the deploy.
        self.runtime = Runtime(
            flags, Options.from_options(options), strict=not _in_event_loop(), debug_from=_debug_of
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        f = scope[SCOPE_KEY] = runtime.open(scope, ASGIView)
        state = scope.get("state")
        if state is None:
            scope["state"] = {"flags": f}
        else:
            state["flags"] = f
        status: int | None = None

        # A plain function returning send's awaitable: no extra coroutine per message.
        def _send(message: Message) -> Any:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message.get("status")
                extra = runtime.headers(f)
                if extra is not None:
                    message = _with_headers(message, extra)
            return send(message)

        token = bind(f)
        try:
            await self.app(scope, receive, _send)
        except BaseException as exc:
            runtime.finish(f, status, exc)
            raise
        else:
            runtime.finish(f, status, None)
        finally:
            unbind(token)
            # The Flags refers to its scope: leaving these would make every request's scope
            # a cycle that only the garbage collector frees (measured: twice the p99 latency).
            scope.pop(SCOPE_KEY, None)
            state = scope.get("state")
            if state is not None and state.get("flags") is f:
                del state["flags"]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _with_headers(message: Message, extra: ResponseHeaders) -> Message:
    """``http.response.start`` with rampup's headers appended; unchanged if they cannot be
    encoded (a misconfigured cookie domain must not break the response)."""
    try:
        added = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.pairs()]
    except UnicodeEncodeError:
        log.exception("rampup: response headers are not latin-1; sending none")
        return message
    return {**message, "headers": [*message.get("headers", ()), *added]}
