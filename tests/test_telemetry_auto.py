"""Telemetry on with the one line: each adapter's one-line setup (no listener argument) inside
the real opentelemetry-instrumentation-wsgi / -asgi middleware, with the real SDK (in-memory
span exporter and metric reader).

Nothing is set globally (the API lets global providers be set once per process, which would
leak into every later test): the OpenTelemetry middleware gets the tracer provider, and the
process's shared telemetry listener (what ``telemetry="auto"`` installs) is swapped for one
made on the test's meter provider."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.instrumentation.asgi")

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGI
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import rampup
import rampup.telemetry
from rampup._telemetry_auto import listeners_for
from rampup.outcomes import OutcomeBook, OutcomeRecorder
from rampup.outcomes import book as process_book
from rampup.telemetry import RampupTelemetry, error_rates, shared

ON_USERS = ["on-0", "on-1", "on-2"]
OFF_USERS = [f"user-{i}" for i in range(5)]

_SPANS = InMemorySpanExporter()
_READER = InMemoryMetricReader()


_TP = TracerProvider()
_TP.add_span_processor(SimpleSpanProcessor(_SPANS))


@pytest.fixture(scope="module", autouse=True)
def sdk_telemetry() -> Iterator[None]:
    """The shared telemetry listener, on the SDK meter provider of these tests."""
    mp = MeterProvider(metric_readers=[_READER])
    saved = rampup.telemetry._shared
    rampup.telemetry._shared = RampupTelemetry(meter_provider=mp)
    yield
    rampup.telemetry._shared = saved
    mp.shutdown()


@pytest.fixture(autouse=True)
def no_spans() -> None:
    _SPANS.clear()


def flag_file(key: str) -> dict[str, Any]:
    """``key`` serves on to ON_USERS (a rule: the book counts it); button is constant."""
    return {
        "version": 1,
        "flags": {
            key: {
                "default": "off",
                "rules": [
                    {
                        "conditions": [{"attribute": "key", "op": "in", "value": ON_USERS}],
                        "serve": "on",
                    }
                ],
            },
            "button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        },
    }


def read_flags(f: Any, key: str, path: str) -> str:
    """What every view does: read ``key`` twice and button once; raise for on at /raise."""
    on = f.enabled(key)
    f.enabled(key)
    f.variant("button")
    if on and path == "/raise":
        raise RuntimeError("the new checkout is broken")
    return "on" if on else "off"


# -- the one-line setups, inside OpenTelemetry's middleware ---------------------------------
def wsgi_app(key: str) -> Any:
    from rampup.wsgi import RampupMiddleware

    def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = read_flags(environ["rampup.flags"], key, environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]

    return OtelWSGI(
        RampupMiddleware(view, flags=flag_file(key), user_header="X-User"), tracer_provider=_TP
    )


def flask_app(key: str) -> Any:
    flask = pytest.importorskip("flask")
    from rampup.flask import Rampup

    app = flask.Flask(__name__)

    @app.get("/")
    @app.get("/raise")
    def home() -> str:
        return read_flags(rampup.flags, key, flask.request.path)

    Rampup(app, flags=flag_file(key), user_header="X-User", watch=False)
    app.wsgi_app = OtelWSGI(app.wsgi_app, tracer_provider=_TP)  # type: ignore[method-assign]
    return app.wsgi_app


def django_app(key: str) -> Any:
    pytest.importorskip("django")
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.test import override_settings
    from django.urls import path

    from django_setup import configure_django

    configure_django()

    def view(request: Any) -> HttpResponse:
        return HttpResponse(read_flags(request.flags, key, request.path))

    class Urls:
        urlpatterns = [path("", view), path("raise", view)]

    override = override_settings(
        ROOT_URLCONF=Urls,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=["rampup.django.RampupMiddleware"],
        RAMPUP={"FLAGS": flag_file(key), "USER_HEADER": "X-User", "WATCH": False},
    )
    override.enable()
    handler = WSGIHandler()
    app = OtelWSGI(handler, tracer_provider=_TP)
    app.rampup_override = override  # type: ignore[attr-defined]
    return app


def asgi_app(key: str) -> Any:
    from rampup.asgi import RampupMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = read_flags(scope["state"]["flags"], key, scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    return OtelASGI(
        RampupMiddleware(app, flags=flag_file(key), user_header="X-User"), tracer_provider=_TP
    )


def starlette_app(key: str) -> Any:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rampup.asgi import RampupMiddleware

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(read_flags(request.state.flags, key, request.url.path))

    app = Starlette(
        routes=[Route("/", home), Route("/raise", home)],
        middleware=[Middleware(RampupMiddleware, flags=flag_file(key), user_header="X-User")],
    )
    return OtelASGI(app, tracer_provider=_TP)


def fastapi_app(key: str) -> Any:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    from rampup.fastapi import RampupMiddleware

    app = FastAPI()

    @app.get("/")
    def home() -> str:
        return read_flags(rampup.flags, key, "/")

    @app.get("/raise")
    def boom() -> str:
        return read_flags(rampup.flags, key, "/raise")

    app.add_middleware(RampupMiddleware, flags=flag_file(key), user_header="X-User")
    return OtelASGI(app, tracer_provider=_TP)


def send_wsgi(app: Any, path: str, user: str) -> int:
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    environ["HTTP_X_USER"] = user
    seen: list[str] = []
    try:
        body = app(environ, lambda status, headers, exc_info=None: seen.append(status))
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    except RuntimeError:
        return 500  # what the server answers
    return int(seen[-1][:3])


def send_asgi(app: Any, path: str, user: str) -> int:
    httpx = pytest.importorskip("httpx")

    async def go() -> int:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return (await c.get(path, headers={"X-User": user})).status_code

    return asyncio.run(go())


SETUPS = {
    "wsgi": (wsgi_app, send_wsgi),
    "flask": (flask_app, send_wsgi),
    "django": (django_app, send_wsgi),
    "asgi": (asgi_app, send_asgi),
    "starlette": (starlette_app, send_asgi),
    "fastapi": (fastapi_app, send_asgi),
}


def exported(name: str, key: str) -> dict[str, int]:
    """variant -> value of the observable counter ``name`` for flag ``key``."""
    out: dict[str, int] = {}
    data = _READER.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name != name:
                    continue
                for p in m.data.data_points:
                    a = dict(p.attributes or {})
                    if a.get("feature_flag.key") == key:
                        v = str(a["feature_flag.result.variant"])
                        out[v] = out.get(v, 0) + int(p.value)  # type: ignore[union-attr]
    return out


@pytest.mark.parametrize("framework", list(SETUPS))
def test_one_line_setup_tags_spans_and_exports_outcomes(framework: str) -> None:
    """No listener argument: each server span carries one feature_flag.evaluation event per
    flag read with the variant served; the exported per-variant requests equal the requests
    sent, errors land on the variant whose view raised, each erring subject counts once
    (every on user retries), and the outcome book agrees with the exporter."""
    make, send = SETUPS[framework]
    key = f"{framework}-checkout"  # its own flag: the process's book never saw it
    app = make(key)
    try:
        statuses = [send(app, "/", u) for u in ON_USERS + OFF_USERS]
        assert statuses == [200] * 8
        for user in ON_USERS + OFF_USERS:
            for _ in range(2):  # a retry
                send(app, "/raise", user)
    finally:
        override = getattr(app, "rampup_override", None)
        if override is not None:
            override.disable()

    tagged = [s for s in _SPANS.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert len(tagged) == 8 + 16
    for span in tagged:
        flagged = [dict(e.attributes or {}) for e in span.events if e.name.startswith("feature")]
        assert [e["feature_flag.key"] for e in flagged] == [key, "button"]
        assert all(e["feature_flag.provider.name"] == "rampup" for e in flagged)
    served = [
        dict(e.attributes or {})["feature_flag.result.variant"]
        for s in tagged
        for e in s.events
        if dict(e.attributes or {}).get("feature_flag.key") == key
    ]
    assert served.count("on") == 3 * 3
    assert served.count("off") == 5 * 3

    assert exported("rampup.requests", key) == {"on": 9, "off": 15}
    assert exported("rampup.request.errors", key) == {"on": 6, "off": 0}
    assert exported("rampup.request.error_subjects", key) == {"on": 3, "off": 0}
    assert "button" not in str(exported("rampup.requests", "button"))  # constant: not counted
    book = process_book.read(key)
    assert {v: (s.requests, s.errors) for v, s in book.items()} == {
        "on": (9, 6),
        "off": (15, 0),
    }
    rates = error_rates(process_book, key)
    assert (rates["on"].errors, rates["off"].requests) == (6, 15)
    assert rates == error_rates(_READER, key)


def test_the_shared_telemetry_is_installed_once_per_process() -> None:
    """ "auto" installs the same RampupTelemetry in every middleware (one set of observable
    instruments per process), plus the recorder of the process's book."""
    first, second = listeners_for("auto"), listeners_for("auto")
    assert first[0] is second[0] is shared()
    assert isinstance(first[1], OutcomeRecorder)
    assert first[1].book is process_book


@pytest.mark.parametrize(
    ("option", "kinds"),
    [
        ("auto", ["RampupTelemetry", "OutcomeRecorder"]),
        ("on", ["RampupTelemetry", "OutcomeRecorder"]),
        (True, ["RampupTelemetry", "OutcomeRecorder"]),
        ("off", ["OutcomeRecorder"]),
        (False, ["OutcomeRecorder"]),
        (None, ["OutcomeRecorder"]),
    ],
)
def test_telemetry_option_values(option: Any, kinds: list[str]) -> None:
    """The option's values and the listeners they install (the book's recorder always)."""
    assert [type(x).__name__ for x in listeners_for(option)] == kinds


def test_an_instance_customises_and_a_given_one_is_kept() -> None:
    """telemetry=RampupTelemetry(...) installs that one; one already in listeners is kept and
    none added; its book is the one the recorder feeds."""
    mine = RampupTelemetry(mode="attributes", book=OutcomeBook())
    assert listeners_for(mine)[0] is mine
    got = listeners_for("auto", [mine])
    assert got[0] is mine
    assert len(got) == 2
    assert got[1].book is mine.book  # type: ignore[attr-defined]
    recorder = OutcomeRecorder(OutcomeBook())
    assert listeners_for("off", [recorder]) == (recorder,)


@pytest.mark.parametrize("bad", ["yes", 1, object()])
def test_a_bad_option_names_the_choices(bad: Any) -> None:
    """A value that is neither a choice nor a listener is refused with the choices."""
    with pytest.raises(ValueError, match="'auto', 'on', 'off'"):
        listeners_for(bad)


def test_flask_and_django_read_the_option_from_their_settings() -> None:
    """RAMPUP_TELEMETRY = False (Flask) and RAMPUP["TELEMETRY"] = False (Django) leave only
    the recorder; the default installs telemetry too."""
    flask = pytest.importorskip("flask")
    from rampup.flask import Rampup

    app = flask.Flask(__name__)
    app.config["RAMPUP_TELEMETRY"] = False
    Rampup(app, flags=flag_file("x"), watch=False)
    listeners = app.extensions["rampup"].runtime.all_listeners
    assert [type(x).__name__ for x in listeners] == ["OutcomeRecorder"]
    other = flask.Flask(__name__)
    Rampup(other, flags=flag_file("x"), watch=False)
    runtime = other.extensions["rampup"].runtime
    assert shared() in runtime.all_listeners

    pytest.importorskip("django")
    django_app("x").rampup_override.disable()  # configures Django
    from django.test import override_settings

    from rampup.django.conf import build_runtime

    with override_settings(RAMPUP={"FLAGS": flag_file("x"), "TELEMETRY": False, "WATCH": False}):
        assert [type(x).__name__ for x in build_runtime().all_listeners] == ["OutcomeRecorder"]
