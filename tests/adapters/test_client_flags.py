"""Flags for the front end: only ``client = true`` flags' values leave the server, escaped for
HTML, through Flags.client(), the Flask Jinja global, the Django tag and the JSON endpoints."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("httpx")

import httpx
from flask import Flask, render_template_string
from werkzeug.test import Client

from rampup import asgi, client, wsgi
from rampup.config import load
from rampup.context import Flags
from rampup.flask import Rampup
from rampup.model import Subject

HOSTILE = '</script><script>alert("x")</script><!-- \u2028'
FLAGS: dict[str, Any] = {
    "segments": {"staff": {"keys": ["secret-staff-id"]}},
    "flags": {
        "banner": {"client": True, "variants": {"a": HOSTILE, "b": "plain"}, "default": "a"},
        "new-checkout": {
            "client": True,
            "rules": [{"segments": ["staff"], "serve": "on"}],
        },
        "internal-tool": {"default": "on", "description": "never sent to browsers"},
        "pricing": {"variants": {"x": "secret-price", "y": 2}, "default": "x"},
    },
}
MARKED = {"banner", "new-checkout"}


def parse_script(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="rampup-flags">(.*?)</script>', html)
    assert m is not None, html
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def assert_nothing_private(text: str) -> None:
    for secret in ("internal-tool", "pricing", "secret-price", "staff", "secret-staff-id"):
        assert secret not in text


def test_client_holds_only_marked_flags_values() -> None:
    """Flags.client() maps each client = true flag to its value, and nothing else."""
    f = Flags(load(FLAGS), Subject("secret-staff-id"))
    assert f.client() == {"banner": HOSTILE, "new-checkout": True}


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
        st.tuples(st.booleans(), st.sampled_from(["on", "off"])),
        max_size=8,
    ),
    st.one_of(st.none(), st.text(max_size=8)),
)
def test_unmarked_flags_never_appear(spec: dict[str, tuple[bool, str]], key: str | None) -> None:
    """Whatever the flags and the subject, client() and the JSON hold exactly the marked ones."""
    snap = load({"flags": {k: {"client": c, "default": d} for k, (c, d) in spec.items()}})
    f = Flags(snap, Subject(key))
    marked = {k for k, (c, _) in spec.items() if c}
    assert set(f.client()) == marked
    assert set(json.loads(client.client_json(f))) == marked
    assert set(parse_script(client.script_tag(f))) == marked


def test_json_is_safe_inside_a_script_element() -> None:
    """No value can close the <script> element or open a comment: < > & U+2028 are escaped,
    and the JSON still reads back to the same values."""
    f = Flags(load(FLAGS), Subject("u"))
    tag = client.script_tag(f)
    body = tag.removeprefix('<script type="application/json" id="rampup-flags">')
    body = body.removesuffix("</script>")
    assert not {"<", ">", "\u2028"} & set(body)
    assert json.loads(body) == {"banner": HOSTILE, "new-checkout": False}


def test_flask_jinja_global_writes_the_client_flags() -> None:
    """{{ rampup_client_flags() }} in a Flask template writes the request's client flags."""
    app = Flask(__name__)
    Rampup(app, flags=FLAGS, user_header="X-User", watch=False)

    @app.get("/")
    def page() -> str:
        return render_template_string("<body>{{ rampup_client_flags() }}</body>")

    resp = app.test_client().get("/", headers={"X-User": "secret-staff-id"})
    text = resp.get_data(as_text=True)
    assert parse_script(text) == {"banner": HOSTILE, "new-checkout": True}
    assert_nothing_private(text)
    assert "</script><script>" not in text


def test_django_tag_writes_the_client_flags() -> None:
    """{% rampup_client_flags %} writes the request's client flags, escaped."""
    from django.conf import settings as dj

    if not dj.configured:
        dj.configure(INSTALLED_APPS=["rampup.django"], DATABASES={}, USE_TZ=True)
    import django

    django.setup()
    from django.template import Context, Engine

    engine = Engine(libraries={"rampup_tags": "rampup.django.templatetags.rampup_tags"})
    request = type("Request", (), {"flags": Flags(load(FLAGS), Subject("secret-staff-id"))})()
    out = engine.from_string("{% load rampup_tags %}{% rampup_client_flags %}").render(
        Context({"request": request})
    )
    assert parse_script(out) == {"banner": HOSTILE, "new-checkout": True}
    assert_nothing_private(out)


def test_wsgi_endpoint_answers_with_json() -> None:
    """rampup.client.wsgi_endpoint behind the WSGI middleware serves the client flags as
    uncacheable JSON."""
    app = wsgi.RampupMiddleware(client.wsgi_endpoint, flags=FLAGS, user_header="X-User")
    resp = Client(app).get("/", headers={"X-User": "secret-staff-id"})
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert json.loads(resp.get_data()) == {"banner": HOSTILE, "new-checkout": True}
    assert_nothing_private(resp.get_data(as_text=True))


def test_asgi_endpoint_answers_with_json() -> None:
    """rampup.client.asgi_endpoint behind the ASGI middleware serves the client flags."""
    app = asgi.RampupMiddleware(client.asgi_endpoint, flags=FLAGS, user_header="X-User")

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/flags.json", headers={"X-User": "nobody"})

    resp = asyncio.run(fetch())
    assert resp.headers["cache-control"] == "private, no-store"
    assert resp.json() == {"banner": HOSTILE, "new-checkout": False}
    assert_nothing_private(resp.text)


def test_outside_a_request_no_flags_are_sent() -> None:
    """client_values() outside any request is empty (and logged), never an exception."""
    assert client.client_values() == {}


def test_flask_one_line_endpoint() -> None:
    """The documented Flask one-liner serves the client flags as JSON."""
    from rampup import flags

    app = Flask(__name__)
    Rampup(app, flags=FLAGS, watch=False)
    app.get("/flags.json")(flags.client)
    resp = app.test_client().get("/flags.json")
    assert resp.get_json() == {"banner": HOSTILE, "new-checkout": False}
    assert_nothing_private(resp.get_data(as_text=True))
