"""QA overrides end to end in Flask, Django and Starlette, each through its own test client."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("starlette")
pytest.importorskip("httpx")

from django.http import HttpResponse, JsonResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from django_setup import configure_django

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when only httpx is installed.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

import rampup
from rampup._signing import sign
from rampup.asgi import RampupMiddleware as ASGIMiddleware
from rampup.flask import Rampup

configure_django()

SECRET = "framework-secret-0123456789-0123456789"
NEW = "rotated-secret-new-0123456789-0123456789"
OLD = "rotated-secret-old-0123456789-0123456789"
KEYS = ("new-checkout", "button", "admin", "legacy")
FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "new-checkout": {
            "default": "off",
            "rules": [
                {
                    "conditions": [{"attribute": "path", "op": "equals", "value": "/read"}],
                    "serve": "on",
                }
            ],
        },
        "button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        "admin": {"default": "off", "overridable": False},
        "legacy": {"killed": True, "default": "on"},
    },
}
FRAMEWORKS = ("flask", "django", "starlette")


@dataclass
class Response:
    """What a test looks at, whatever the framework."""

    status: int
    body: Any
    headers: dict[str, list[str]]

    def variants(self) -> dict[str, tuple[str, str]]:
        return {k: (v[0], v[1]) for k, v in self.body.items()}

    @property
    def report(self) -> str | None:
        values = self.headers.get("x-rampup-overrides")
        return values[0] if values else None


Get = Callable[..., Response]


def decisions() -> dict[str, list[str]]:
    """Each flag's [variant, reason] in the current request."""
    out: dict[str, list[str]] = {}
    for key in KEYS:
        d = rampup.flags.decision(key)
        out[key] = [str(d.variant), d.reason.value]
    return out


def grouped(items: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(value)
    return out


# -- Flask -----------------------------------------------------------------------------------
def flask_get(debug: bool, secret_key: str | None, options: dict[str, Any]) -> Get:
    app = Flask(__name__)
    app.debug = debug
    if secret_key is not None:
        app.config["SECRET_KEY"] = secret_key
    Rampup(app, flags=FLAGS, watch=False, **options)
    app.add_url_rule("/read", "read", lambda: jsonify(decisions()))
    app.add_url_rule("/none", "none", lambda: "nothing read")

    def get(url: str, headers: dict[str, str] | None = None) -> Response:
        # use_cookies=False: send the Cookie header as given, as a browser would
        r = app.test_client(use_cookies=False).get(url, headers=headers or {})
        body = r.get_json(silent=True) or r.get_data(as_text=True)
        return Response(r.status_code, body, grouped(r.headers.items()))

    return get


# -- Django ----------------------------------------------------------------------------------
def django_read(request: Any) -> JsonResponse:
    return JsonResponse(decisions())


def django_none(request: Any) -> HttpResponse:
    return HttpResponse("nothing read")


urlpatterns = [path("read", django_read), path("none", django_none)]


def django_get(debug: bool, secret_key: str | None, options: dict[str, Any]) -> Get:
    rampup_setting = {"FLAGS": FLAGS, "WATCH": False, **{k.upper(): v for k, v in options.items()}}

    def get(url: str, headers: dict[str, str] | None = None) -> Response:
        with override_settings(
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["rampup.django.RampupMiddleware"],
            ALLOWED_HOSTS=["testserver"],
            DEBUG=debug,
            SECRET_KEY=secret_key or "",
            RAMPUP=rampup_setting,
        ):
            r = DjangoClient().get(url, headers=headers or {})
        body = r.json() if r["Content-Type"] == "application/json" else r.content.decode()
        items = [(k, v) for k, v in r.items() if k.lower() != "set-cookie"]
        items += [("Set-Cookie", m.OutputString()) for m in r.cookies.values()]
        return Response(r.status_code, body, grouped(items))

    return get


# -- Starlette -------------------------------------------------------------------------------
async def starlette_read(request: Request) -> JSONResponse:
    return JSONResponse(decisions())


async def starlette_none(request: Request) -> PlainTextResponse:
    return PlainTextResponse("nothing read")


def starlette_get(debug: bool, secret_key: str | None, options: dict[str, Any]) -> Get:
    app = Starlette(
        debug=debug, routes=[Route("/read", starlette_read), Route("/none", starlette_none)]
    )
    if secret_key is not None:  # Starlette has no SECRET_KEY of its own
        options = {"override_secret": secret_key, **options}
    # No debug= here: the middleware learns Starlette's debug flag from the first request.
    app.add_middleware(ASGIMiddleware, flags=FLAGS, watch=False, **options)

    def get(url: str, headers: dict[str, str] | None = None) -> Response:
        r = TestClient(app).get(url, headers=headers or {})
        ctype = r.headers.get("content-type", "")
        body = r.json() if ctype.startswith("application/json") else r.text
        return Response(r.status_code, body, grouped(r.headers.multi_items()))

    return get


BUILDERS = {"flask": flask_get, "django": django_get, "starlette": starlette_get}


@pytest.fixture(params=FRAMEWORKS)
def client(request: pytest.FixtureRequest) -> Callable[..., Get]:
    """make(debug=False, secret_key=None, **options) -> get(url, headers) for one framework."""
    builder = BUILDERS[request.param]

    def make(debug: bool = False, secret_key: str | None = None, **options: Any) -> Get:
        return builder(debug, secret_key, options)

    return make


def signed(spec: str, secret: str = SECRET, ttl: int = 3600, subject: str | None = None) -> str:
    return sign(spec, int(time.time()) + ttl, secret, subject)


def force(value: str) -> dict[str, str]:
    return {"X-Rampup-Override": value}


# -- tests -----------------------------------------------------------------------------------
def test_signed_override_honoured_with_the_framework_secret(client: Callable[..., Get]) -> None:
    """A token signed with the framework's secret forces variants (reason OVERRIDE), and the
    authorized tester gets the report; rules of other flags still apply."""
    get = client(secret_key=SECRET)
    r = get("/read", force(signed("button=green")))
    assert r.status == 200
    assert r.variants()["button"] == ("green", "OVERRIDE")
    assert r.variants()["new-checkout"] == ("on", "RULE_MATCH")
    assert r.report == "served button=green (header, signed)"


def test_override_wins_over_rules_and_kill_switch_wins_over_override(
    client: Callable[..., Get],
) -> None:
    """Order: kill switch > override > rules."""
    get = client(secret_key=SECRET)
    r = get("/read", force(signed("new-checkout=off,legacy=on")))
    assert r.variants()["new-checkout"] == ("off", "OVERRIDE")
    assert r.variants()["legacy"] == ("off", "KILLED")
    assert r.report is not None
    assert "refused legacy=on (header, signed): flag is killed" in r.report


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (lambda: signed("button=green")[:-4] + "AAAA", "bad signature"),
        (lambda: signed("button=green").replace("v1.ey", "v1.ez"), "bad signature"),
        (lambda: signed("button=green", ttl=-5), "expired"),
        (lambda: signed("button=green", secret="someone-elses-secret"), "bad signature"),
        (lambda: "button=green", "unsigned"),
    ],
    ids=["tampered-mac", "tampered-payload", "expired", "wrong-secret", "unsigned"],
)
def test_bad_overrides_refused_in_production(
    client: Callable[..., Get], value: Callable[[], str], why: str
) -> None:
    """Tampered, expired, wrongly signed and unsigned overrides change nothing in production,
    and the report is not shown to an unauthorized sender."""
    get = client(secret_key=SECRET)
    r = get("/read", force(value()))
    assert r.status == 200
    assert r.variants()["button"] == ("blue", "DEFAULT")
    assert r.report is None
    debug = client(secret_key=SECRET, debug=True, overrides="signed")
    shown = debug("/read", force(value())).report
    assert shown is not None
    assert why in shown  # the same refusal, visible in debug mode


def test_rotated_secret_still_honoured(client: Callable[..., Get]) -> None:
    """With override_secret=(new, old), tokens signed with either are honoured."""
    get = client(secret_key=SECRET, override_secret=(NEW, OLD))
    for secret in (NEW, OLD):
        assert get("/read", force(signed("button=green", secret))).variants()["button"] == (
            "green",
            "OVERRIDE",
        )
    assert get("/read", force(signed("button=green"))).variants()["button"][1] == "DEFAULT"


def test_unsigned_honoured_in_debug_mode(client: Callable[..., Get]) -> None:
    """In debug mode unsigned overrides work even with a secret set, and the report is always
    there (also for what was refused)."""
    get = client(debug=True, secret_key=SECRET)
    r = get("/read", force("button=green, admin=on, nope=on"))
    assert r.variants()["button"] == ("green", "OVERRIDE")
    assert r.variants()["admin"] == ("off", "DEFAULT")
    assert r.report == (
        "served button=green (header); refused admin=on (header): flag is not overridable; "
        "refused nope=on (header): unknown flag"
    )


def test_non_overridable_refused_even_when_signed(client: Callable[..., Get]) -> None:
    """overridable = false refuses a signed override, and says so to the tester."""
    get = client(secret_key=SECRET)
    r = get("/read", force(signed("admin=on")))
    assert r.variants()["admin"] == ("off", "DEFAULT")
    assert r.report == "refused admin=on (header, signed): flag is not overridable"


def test_cookie_and_no_override_no_report(client: Callable[..., Get]) -> None:
    """The cookie carries a token like the header; no override means no report header."""
    get = client(secret_key=SECRET)
    r = get("/read", {"Cookie": f"rampup_override={signed('button=green')}"})
    assert r.variants()["button"] == ("green", "OVERRIDE")
    assert r.report == "served button=green (cookie, signed)"
    plain = get("/read")
    assert plain.report is None
    assert plain.variants()["button"] == ("blue", "DEFAULT")


def test_overrides_off_without_secret_outside_debug(client: Callable[..., Get]) -> None:
    """No secret and no debug: overrides are off, whatever is sent."""
    get = client()
    r = get("/read", force(signed("button=green")))
    assert r.variants()["button"] == ("blue", "DEFAULT")
    assert r.report is None


def test_query_param_sets_cookie_even_when_no_flag_is_read(client: Callable[..., Get]) -> None:
    """?qa=<token> sets the override cookie on a view that reads no flag; the browser sending
    it back gets the override; ?qa= clears it."""
    get = client(secret_key=SECRET, override_query_param="qa")
    tok = signed("button=green")
    r = get(f"/none?qa={tok}")
    assert r.status == 200
    assert r.body == "nothing read"
    cookies = [c for c in r.headers.get("set-cookie", []) if c.startswith("rampup_override=")]
    assert len(cookies) == 1
    value = cookies[0].split(";")[0]
    assert value == f"rampup_override={tok}"
    assert "Max-Age=" in cookies[0]
    again = get("/read", {"Cookie": value})
    assert again.variants()["button"] == ("green", "OVERRIDE")
    cleared = get("/none?qa=", {"Cookie": value})
    (gone,) = [c for c in cleared.headers["set-cookie"] if c.startswith("rampup_override=")]
    assert "Max-Age=0" in gone


def test_unsigned_cookie_with_commas_survives_the_framework(client: Callable[..., Get]) -> None:
    """In debug mode, ?qa=a=x,b=y sets a cookie that the framework may quote; it still reads."""
    get = client(debug=True, override_query_param="qa")
    r = get("/none?qa=button%3Dgreen%2Cnew-checkout%3Doff")
    (cookie,) = [c for c in r.headers["set-cookie"] if c.startswith("rampup_override=")]
    again = get("/read", {"Cookie": cookie.split(";")[0]})
    assert again.variants()["button"] == ("green", "OVERRIDE")
    assert again.variants()["new-checkout"] == ("off", "OVERRIDE")


def test_garbage_never_breaks_the_request(client: Callable[..., Get]) -> None:
    """Oversized, binary-ish and broken values are refused with reasons, never a 500."""
    get = client(debug=True, secret_key=SECRET)
    for value in ("v1.!!!.???", "x" * 5000, ",".join(["button=green"] * 3000)[:4000], "v1.a.b"):
        r = get("/read", force(value))
        assert r.status == 200
        assert r.variants()["button"][1] in ("DEFAULT", "OVERRIDE")
        assert r.report is not None
