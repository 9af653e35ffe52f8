"""A framework-free request and response, and the WSGI and ASGI glue around one handler.

The dashboard's logic is one synchronous function ``handle(Request) -> Response``: the WSGI app
calls it directly, the ASGI app in a worker thread (the store is blocking I/O and must not stall
the event loop). Bodies are capped at :data:`MAX_BODY` bytes: the only bodies are small forms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

__all__ = ["MAX_BODY", "Request", "Response", "asgi_app", "mount_wsgi", "wsgi_app"]

#: the largest request body read (the forms hold a token, a reason and a number)
MAX_BODY = 16 * 1024

_REASONS = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    """One request to the dashboard, as the authorisation callback receives it.

    ``root`` is the mount prefix (``/_rampup``); ``path`` the rest (``/flag/x``). ``native`` is
    the framework's own object when there is one (Django's ``HttpRequest``), ``environ`` the WSGI
    environ or ``scope`` the ASGI scope.
    """

    method: str
    root: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    remote_addr: str = ""
    body: bytes = b""
    scheme: str = "http"
    environ: Mapping[str, Any] | None = None
    scope: Mapping[str, Any] | None = None
    native: Any = None
    #: set by the dashboard once the callback accepted the request
    user: str = ""
    #: the form as the framework parsed it (Django), else parsed from ``body``
    parsed_form: dict[str, str] | None = None

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies (a bad Cookie header gives none)."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:
            return {}
        return {k: m.value for k, m in jar.items()}

    def form(self) -> dict[str, str]:
        """The urlencoded form fields (the first value of each)."""
        if self.parsed_form is not None:
            return dict(self.parsed_form)
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return {}
        try:
            pairs = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in pairs.items()}


@dataclass(slots=True)
class Response:
    """Status, headers and a body (text is sent as UTF-8)."""

    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encoded(self) -> bytes:
        """The body as bytes."""
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body

    def all_headers(self, length: int) -> list[tuple[str, str]]:
        """Content type and length first, then the others."""
        return [("Content-Type", self.content_type), ("Content-Length", str(length)), *self.headers]


def _query(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


Handler = Callable[[Request], Response]


def wsgi_app(handle: Handler) -> Callable[..., Iterable[bytes]]:
    """A WSGI application around ``handle``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            k[5:].replace("_", "-").lower(): str(v)
            for k, v in environ.items()
            if k.startswith("HTTP_")
        }
        for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(k):
                headers[k.replace("_", "-").lower()] = str(environ[k])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            response = Response(413, "request body too large", "text/plain; charset=utf-8")
            body = b""
        else:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            request = Request(
                method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
                root=str(environ.get("SCRIPT_NAME", "")).rstrip("/"),
                path=_wsgi_path(environ),
                query=_query(str(environ.get("QUERY_STRING", ""))),
                headers=headers,
                remote_addr=str(environ.get("REMOTE_ADDR", "")),
                body=body,
                scheme=str(environ.get("wsgi.url_scheme", "http")),
                environ=environ,
            )
            response = handle(request)
        data = response.encoded()
        start_response(
            f"{response.status} {_REASONS.get(response.status, 'Unknown')}",
            response.all_headers(len(data)),
        )
        return [data]

    return app


def _wsgi_path(environ: Mapping[str, Any]) -> str:
    # PEP 3333: PATH_INFO is bytes decoded as latin-1; re-decode as UTF-8 for flag keys
    raw = str(environ.get("PATH_INFO", "")) or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def asgi_app(handle: Handler) -> Callable[..., Any]:
    """An ASGI (HTTP) application around ``handle``; ``handle`` runs in a worker thread."""

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        too_big = False
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                too_big = True
                break
            if not message.get("more_body"):
                break
        if too_big:
            response = Response(413, "request body too large", "text/plain; charset=utf-8")
        else:
            root = str(scope.get("root_path", "")).rstrip("/")
            path = str(scope.get("path", "/"))
            # Starlette's Mount keeps the full path and puts the prefix in root_path
            if root and path.startswith(root):
                path = path[len(root) :]
            client = scope.get("client") or ("", 0)
            request = Request(
                method=str(scope.get("method", "GET")).upper(),
                root=root,
                path=path or "/",
                query=_query(scope.get("query_string", b"").decode("latin-1")),
                headers=headers,
                remote_addr=str(client[0]),
                body=body,
                scheme=str(scope.get("scheme", "http")),
                scope=scope,
            )
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(None, handle, request)
        data = response.encoded()
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in response.all_headers(len(data))
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    return app


def mount_wsgi(app: Callable[..., Any], prefix: str, dashboard: Callable[..., Any]) -> Any:
    """A WSGI app serving ``dashboard`` under ``prefix`` and ``app`` everywhere else."""
    prefix = "/" + prefix.strip("/")

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        if path == prefix or path.startswith(prefix + "/"):
            environ = dict(environ)
            environ["SCRIPT_NAME"] = str(environ.get("SCRIPT_NAME", "")) + prefix
            environ["PATH_INFO"] = path[len(prefix) :] or "/"
            return dashboard(environ, start_response)
        return app(environ, start_response)

    return dispatch
