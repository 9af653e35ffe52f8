"""Flags for the front end: the values of the flags marked ``client = true``, as JSON that is
safe inside an HTML page, and a tiny WSGI/ASGI endpoint serving them to single-page apps.

Only values leave the server: never rules, segments, unmarked flags or the subject. The JSON is
escaped so that no value can close the ``<script>`` element holding it (``</script>``,
``<!--``) or break a JavaScript string (U+2028/U+2029). Nothing here imports a framework; the
Flask Jinja global and the Django template tag call :func:`script_tag`.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .context import Flags, current
from .errors import UnboundFlagsError

__all__ = [
    "asgi_endpoint",
    "client_json",
    "client_values",
    "jinja_script_tag",
    "script_tag",
    "wsgi_endpoint",
]

log = logging.getLogger("rampup")

#: What JSON leaves as is but an HTML page must not see raw inside a <script> element.
_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_HEADERS = [
    ("Content-Type", "application/json"),
    # Values are per subject: no shared cache may keep one visitor's flags for another.
    ("Cache-Control", "private, no-store"),
    ("X-Content-Type-Options", "nosniff"),
]


def client_values(f: Flags | None = None) -> dict[str, Any]:
    """``f.client()`` (the current request's by default); ``{}`` outside a request."""
    if f is None:
        try:
            f = current()
        except UnboundFlagsError:
            log.warning("rampup: client flags asked for outside a request; sending none")
            return {}
    return f.client()


def client_json(f: Flags | None = None) -> str:
    """The client flags as JSON safe to embed in HTML (``<``, ``>``, ``&`` escaped). A value
    JSON cannot encode is sent as its string form."""
    return json.dumps(client_values(f), default=str, separators=(",", ":")).translate(_UNSAFE)


def script_tag(f: Flags | None = None, element_id: str = "rampup-flags") -> str:
    """``<script type="application/json" id="rampup-flags">{...}</script>``; read it in the
    page with ``JSON.parse(document.getElementById("rampup-flags").textContent)``."""
    return (
        f'<script type="application/json" id="{html.escape(element_id)}">{client_json(f)}</script>'
    )


def jinja_script_tag(element_id: str = "rampup-flags") -> Any:
    """The Jinja global ``rampup_client_flags()`` (Flask registers it): :func:`script_tag` for
    the current request, marked safe (every value in it is escaped)."""
    from markupsafe import Markup  # a dependency of Jinja, so of Flask

    return Markup(script_tag(None, element_id))


def wsgi_endpoint(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app answering with the request's client flags as JSON; mount it behind
    :class:`rampup.wsgi.RampupMiddleware` (which binds the request's flags)."""
    body = client_json().encode()
    start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


async def asgi_endpoint(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """An ASGI app answering with the request's client flags as JSON; mount it behind
    :class:`rampup.asgi.RampupMiddleware` (e.g. Starlette ``Mount("/flags.json", ...)``)."""
    body = client_json().encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in _HEADERS]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
