"""The demo app behind ``rampup demo``: a plain WSGI app showing each flag's decision.

It uses only the standard library (wsgiref), so ``pip install rampup && rampup demo`` works on a
fresh machine. Identity comes from headers, as it would behind an auth gateway.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from .wsgi import RampupMiddleware, StartResponse

__all__ = ["DEMO_FLAGS", "make_app", "user_from_headers"]

_HEADERS = {
    "email": "HTTP_X_USER_EMAIL",
    "role": "HTTP_X_USER_ROLE",
    "beta": "HTTP_X_BETA",
    "app_version": "HTTP_X_APP_VERSION",
}


def demo_flags_path() -> Path:
    """The bundled example flag file (the same as examples/flags.toml)."""
    return Path(str(resources.files("rampup") / "data" / "flags.toml"))


DEMO_FLAGS = demo_flags_path


def user_from_headers(environ: dict[str, Any]) -> dict[str, Any]:
    """X-User-Id and X-User-Email/-Role/-App-Version, X-Beta: the subject, gateway style."""
    user: dict[str, Any] = {"key": environ.get("HTTP_X_USER_ID")}
    for attr, header in _HEADERS.items():
        value = environ.get(header)
        if value is not None:
            user[attr] = value == "true" if attr == "beta" else value[:256]
    return user


def _page(flags: Any) -> bytes:
    rows = []
    for key in flags.snapshot.flags:
        d = flags.decision(key)
        rows.append(
            f"<tr><td><code>{html.escape(key)}</code></td><td><b>{html.escape(str(d.variant))}"
            f"</b></td><td>{html.escape(repr(d.value))}</td><td>{d.reason.value}</td>"
            f"<td>{'' if d.rule_index is None else d.rule_index}</td></tr>"
        )
    subject = flags.subject
    body = f"""<!doctype html><meta charset="utf-8"><title>rampup demo</title>
<style>body{{font-family:system-ui;margin:2rem}}td,th{{padding:.2rem .8rem;text-align:left}}</style>
<h1>rampup demo</h1>
<p>Subject: <code>{html.escape(str(subject.key))}</code> {
        html.escape(str(dict(subject.attributes)))
    }</p>
<table><tr><th>flag</th><th>variant</th><th>value</th><th>reason</th><th>rule</th></tr>
{"".join(rows)}</table>
<p>{
        "<b>New checkout!</b> <a href='/checkout'>/checkout</a>"
        if flags.enabled("new-checkout")
        else "Old checkout. Try <code>-H 'X-User-Email: you@example.com'</code>."
    }</p>
"""
    return body.encode()


def demo_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The inner WSGI app: ``/`` (HTML), ``/api/flags`` (JSON), ``/checkout`` (guarded)."""
    flags = environ["rampup.flags"]
    path = environ.get("PATH_INFO", "/")
    if path == "/api/flags":
        data = {
            "subject": flags.subject.key,
            "flags": {
                k: {"variant": d.variant, "value": d.value, "reason": d.reason.value}
                for k, d in ((k, flags.decision(k)) for k in flags.snapshot.flags)
            },
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data, indent=2).encode() + b"\n"]
    if path == "/checkout":
        if not flags.enabled("new-checkout"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: new-checkout is off for you\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the new checkout\n"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [_page(flags)]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def make_app(flags: Any = None, **options: Any) -> RampupMiddleware:
    """The demo app wrapped in the rampup middleware (debug mode: open overrides)."""
    options.setdefault("user", user_from_headers)
    options.setdefault("debug", True)
    return RampupMiddleware(demo_app, flags=flags or demo_flags_path(), **options)
