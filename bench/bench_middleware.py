#!/usr/bin/env python
"""Requests per second of hello-world apps with and without rampup's middleware, in-process.

The app callable is invoked directly in a loop (no server, no sockets), as in
../shared/bench-peers/mwbench.py: each request gets a fresh shallow copy of a prebuilt
environ/scope; ASGI ``receive`` returns one ``http.request`` and ``send`` is a no-op; WSGI
iterates and closes the body. Each framework's variants are timed in the same interleaved rounds:

  a  bare app, no middleware
  b  rampup middleware, the view reads 0 flags                    (the middleware's own cost)
  c  rampup, the view reads 5 flags, subject from a valid ``rampup_id`` cookie
  d  rampup, the view reads 5 flags, subject from the ``X-User-Id`` header (which wins over
     the ``rampup_id`` cookie the request also sends)
  e  rampup, the view reads 5 flags, new visitor (other cookies, no ``rampup_id``): an id is
     minted and set as a cookie (extra)
  f  the floor: a middleware that only binds a ContextVar for the request and wraps
     start_response/send, the least any middleware serving ``rampup.flags`` and adding a
     response header must do (extra; no rampup code runs in it)

The 5 flags: a 10 % split, a segment rule (header.x-user-email ends_with @example.com, else a
10 % split; the request's e-mail is not in it, so the split runs too) and three booleans, read
through ``rampup.flags``. Flags come from an in-memory mapping (a StaticSource: no watcher
thread). Every middleware is configured with ``user_header="X-User-Id"``; Flask and Django get a
SECRET_KEY, so their override reader is on (policy "auto"), as in a real app. Every request
carries the same Cookie header as the bare app's (e without ``rampup_id``): with a SECRET_KEY,
Flask parses cookies on every request, and a variant sending fewer would look cheaper than it is.

Frameworks: ``wsgi`` (a plain WSGI app), ``asgi`` (a plain ASGI app, no Starlette), ``flask``,
``django`` (under WSGI; bench_django_asgi.py has Django under ASGI) and ``starlette``.

Targets (issue 3 item 8): 0 flags read: ratio >= 0.95 (Starlette), >= 0.98 (Flask, Django);
5 flags read: at most 5 µs added per request.

With ``--ab REF`` (a git ref of this repository, e.g. ``main`` or ``9492cd6``), variants b, c and
d are also built with that commit's middleware, imported from a ``git archive`` of its
``src/rampup`` as ``rampup_ref`` (bench_eval.py does the same) and timed in the same rounds as
this copy's; their views read flags through ``rampup_ref.flags``. Django is configured once
per process: both versions read the same ``RAMPUP`` setting, so the ref's variants only put
``"rampup_ref.django.RampupMiddleware"`` in MIDDLEWARE. The A/B table gives this copy's µs, the
ref's and this / ref per framework and variant, then issue 11's speed budget for this copy:
0 flags read at most 1.0 µs above the floor f (b - f) in every framework; 5 flags read at most
5 µs above 0 flags (c - b, d - b) in bare WSGI and bare ASGI, the frameworks' figures beside.
This copy's middleware runs its default listeners (an outcome recorder, and RampupTelemetry
when opentelemetry-api is installed; 9492cd6 runs none): each section prints them, and
``--telemetry off`` times this copy without RampupTelemetry (the outcome recorder cannot be
turned off: it feeds the guard), the closest to a like-for-like A/B.

Usage: python bench/bench_middleware.py [--rounds 15] [--target 0.3] [--quick]
           [--frameworks wsgi,asgi,flask,django,starlette] [--breakdown] [--profile FRAMEWORK]
           [--ab REF] [--telemetry auto|off]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import importlib.util
import io
import os
import pstats
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

import rampup
from rampup import flags

ANON_ID = "3f2a9c4e8b1d4a6f9e0c7b5a2d8e1f40"
USER_ID = "user-00042-deadbeef"
EMAIL = "u42@other.org"  # not in the segment: the segment rule falls through to its split
SECRET = "bench-secret-key-not-for-production"
BODY = b"Hello, world!"

FLAGS: dict[str, Any] = {
    "segments": {
        "staff": {
            "conditions": [
                {"attribute": "header.x-user-email", "op": "ends_with", "value": "@example.com"}
            ]
        }
    },
    "flags": {
        "split-10": {"rules": [{"split": {"on": 10, "off": 90}}]},
        "staff-else-10": {
            "rules": [{"segments": ["staff"], "serve": "on"}, {"split": {"on": 10, "off": 90}}]
        },
        "bool-on": {"default": "on"},
        "bool-off": {"default": "off"},
        "bool-on-2": {"default": "on"},
    },
}
READ = tuple(FLAGS["flags"])
EXPECTED_BOOLS = {"bool-on": True, "bool-off": False, "bool-on-2": True}
OPTIONS: dict[str, Any] = {"user_header": "X-User-Id"}
# this copy's middleware options: OPTIONS, plus telemetry="off" with --telemetry off (the --ab
# ref's middleware always gets OPTIONS: 9492cd6 has no telemetry option and no default listener)
MW_OPTIONS: dict[str, Any] = OPTIONS

LABELS = {
    "a": "bare app",
    "b": "rampup, 0 flags read",
    "c": "rampup, 5 flags, cookie id",
    "d": "rampup, 5 flags, X-User-Id",
    "e": "rampup, 5 flags, new visitor (extra)",
    "f": "floor: binds a ContextVar, wraps start_response/send (extra)",
}
# which request each variant sends
REQUEST_OF = {"a": "cookie", "b": "cookie", "c": "cookie", "d": "header", "e": "new", "f": "cookie"}
RATIO_TARGET = {"starlette": 0.95, "flask": 0.98, "django": 0.98}
ADDED_TARGET_US = 5.0
# issue 11's speed budget (printed with --ab): 0 flags at most 1.0 µs above the floor in every
# framework; 5 flags at most 5 µs above 0 flags in bare WSGI and bare ASGI (others reported)
FLOOR_BUDGET_US = 1.0
FIVE_BUDGET_US = 5.0
FIVE_BUDGET_FRAMEWORKS = ("wsgi", "asgi")
# the variants built again with the --ab ref's middleware, named "<variant>@ref"
AB_VARIANTS = "bcd"
SUBJECT_OF = {"c": "cookie id", "d": "X-User-Id"}
#: the package imported from the --ab ref (rampup_ref), or None
REF: Any = None


# -- the floor (variant f): the least a middleware can do and still serve `rampup.flags`
# (bind a ContextVar for the request) and add response headers (wrap start_response/send).
# Nothing of rampup runs in it: it shows what the ratio targets leave for rampup's own work.
_FLOOR: ContextVar[Any] = ContextVar("bench.floor")


def floor_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    def floor(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = _FLOOR.set(environ)
        try:
            return app(environ, sr)
        finally:
            _FLOOR.reset(token)

    return floor


class FloorASGI:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def _send(message: Any) -> Any:
            return send(message)

        token = _FLOOR.set(scope)
        try:
            await self.app(scope, receive, _send)
        finally:
            _FLOOR.reset(token)


class FloorDjango:
    """In MIDDLEWARE as f"{__name__}.FloorDjango"; Django returns the response itself."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        token = _FLOOR.set(request)
        try:
            return self.get_response(request)
        finally:
            _FLOOR.reset(token)


# What read_five reads through: ``rampup.flags``, or ``rampup_ref.flags`` while an --ab ref
# variant runs (the runners set it before each loop). One switch instead of a second set of
# views keeps the ref's requests on the same routes (Django tries its URL patterns in order).
_reader: Any = flags


def use_reader(reader: Any) -> None:
    global _reader
    _reader = reader


def read_five() -> None:
    enabled = _reader.enabled
    for key in READ:
        enabled(key)


def request_headers(kind: str) -> list[tuple[str, str]]:
    hdrs = [
        ("Host", "127.0.0.1:8000"),
        ("User-Agent", "bench"),
        ("Accept", "*/*"),
        ("X-User-Email", EMAIL),
    ]
    # Every request sends the bare app's cookies, so the framework's own cookie work (Flask
    # parses them to open its session) is the same in every variant and not counted as
    # rampup's; only the new visitor (e) lacks the rampup_id cookie.
    if kind == "new":
        hdrs.append(("Cookie", "theme=dark; _ga=GA1.1.123.456"))
    else:
        hdrs.append(("Cookie", f"theme=dark; rampup_id={ANON_ID}; _ga=GA1.1.123.456"))
    if kind == "header":
        hdrs.append(("X-User-Id", USER_ID))  # wins over the rampup_id cookie
    return hdrs


# ---------------------------------------------------------------------------------------------
# WSGI (plain, Flask, Django)


def environ_for(kind: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request_headers(kind):
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def wsgi_runner(
    app: Callable[..., Any], env0: dict[str, Any], reader: Any = flags
) -> Callable[[int], float]:
    def run(n: int) -> float:
        use_reader(reader)
        sr = _start_response
        t0 = time.perf_counter()
        for _ in range(n):
            it = app(dict(env0), sr)
            for _chunk in it:
                pass
            close = getattr(it, "close", None)
            if close is not None:
                close()
        return time.perf_counter() - t0

    return run


class _Recording(dict[str, Any]):
    """An environ/scope that remembers the Flags rampup stored in it (the middleware removes
    it again when the request ends, to leave no reference cycle)."""

    seen: Any = None

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "rampup.flags":
            self.seen = value
        super().__setitem__(key, value)


def wsgi_call(app: Callable[..., Any], env: dict[str, Any], reader: Any = flags) -> dict[str, Any]:
    use_reader(reader)
    out: dict[str, Any] = {}
    env = _Recording(env)

    def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        out["status"], out["headers"] = int(status[:3]), headers

    it = app(env, sr)
    out["body"] = b"".join(it)
    if hasattr(it, "close"):
        it.close()
    out["flags"] = env.seen
    return out


def plain_wsgi_apps() -> tuple[dict[str, Any], str]:
    from rampup.wsgi import RampupMiddleware

    def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(
            "200 OK",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))],
        )
        return [BODY]

    def hello5(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        read_five()
        return hello(environ, start_response)

    def mw(app: Any) -> Any:
        return RampupMiddleware(app, flags=FLAGS, **MW_OPTIONS)

    apps = {
        "a": hello,
        "b": mw(hello),
        "c": mw(hello5),
        "d": mw(hello5),
        "e": mw(hello5),
        "f": floor_wsgi(hello),
    }
    if REF is not None:
        ref_mw = ref_module("wsgi").RampupMiddleware
        apps["b@ref"] = ref_mw(hello, flags=FLAGS, **OPTIONS)
        apps["c@ref"] = ref_mw(hello5, flags=FLAGS, **OPTIONS)
        apps["d@ref"] = ref_mw(hello5, flags=FLAGS, **OPTIONS)
    return apps, "rampup.wsgi.RampupMiddleware(app, flags=..., user_header=...)"


def flask_hello(reads: bool = False) -> Any:
    """The bench's Flask app: hello world, with a SECRET_KEY as a real app has."""
    from flask import Flask

    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET

    @app.get("/")
    def hello() -> Any:
        if reads:
            read_five()
        return BODY.decode(), 200, {"Content-Type": "text/plain; charset=utf-8"}

    return app


def flask_apps() -> tuple[dict[str, Any], str]:
    has_ext = importlib.util.find_spec("rampup.flask") is not None

    def make(reads: bool, with_rampup: bool, floor: bool = False, ref: bool = False) -> Any:
        app = flask_hello(reads)
        if ref:
            ref_module("flask").Rampup(app, flags=FLAGS, **OPTIONS)
        elif with_rampup:
            if has_ext:
                from rampup.flask import Rampup

                Rampup(app, flags=FLAGS, **MW_OPTIONS)
            else:
                from rampup.wsgi import RampupMiddleware

                app.wsgi_app = RampupMiddleware(app.wsgi_app, flags=FLAGS, **MW_OPTIONS)
        if floor:
            app.wsgi_app = floor_wsgi(app.wsgi_app)  # type: ignore[method-assign]
        return app

    apps = {
        "a": make(False, False),
        "b": make(False, True),
        "c": make(True, True),
        "d": make(True, True),
        "e": make(True, True),
        "f": make(False, False, floor=True),
    }
    if REF is not None:
        apps["b@ref"] = make(False, False, ref=True)
        apps["c@ref"] = make(True, False, ref=True)
        apps["d@ref"] = make(True, False, ref=True)
    how = (
        "rampup.flask.Rampup(app, flags=..., user_header=...)"
        if has_ext
        else "rampup.wsgi.RampupMiddleware around app.wsgi_app (rampup.flask not found)"
    )
    return apps, how


def django_apps() -> tuple[dict[str, Any], str]:
    if importlib.util.find_spec("rampup.django") is None:
        raise ImportError("src/rampup/django does not exist yet")
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        USE_I18N=False,
        DATABASES={},
        LOGGING_CONFIG=None,
        RAMPUP=django_rampup(MW_OPTIONS),
    )
    django.setup()
    globals()["urlpatterns"] = _django_views()
    mw = ["rampup.django.RampupMiddleware"]
    apps = {
        "a": django_handler([]),
        "b": django_handler(mw),
        "c": django_handler(mw),
        "d": django_handler(mw),
        "e": django_handler(mw),
        "f": django_handler([f"{__name__}.FloorDjango"]),
    }
    if REF is not None:
        # Both versions read the same RAMPUP setting (FLAGS and USER_HEADER), so one settings
        # module serves both: the ref's variants differ only in MIDDLEWARE, and their /five
        # view reads rampup_ref.flags through the reader switch.
        ref_mw = [f"{REF.__name__}.django.RampupMiddleware"]
        # With --telemetry off this copy's setting has a TELEMETRY key the ref does not know:
        # the ref's handlers are built under its own RAMPUP (middleware read it when built).
        for v in AB_VARIANTS:
            apps[f"{v}@ref"] = django_handler(ref_mw, django_rampup(OPTIONS))
    return apps, '"rampup.django.RampupMiddleware" in MIDDLEWARE, RAMPUP = {...}'


def django_rampup(options: dict[str, Any]) -> dict[str, Any]:
    """The RAMPUP setting for these middleware options."""
    return {"FLAGS": FLAGS, **{k.upper(): v for k, v in options.items()}}


def django_handler(middleware: list[str], rampup_setting: dict[str, Any] | None = None) -> Any:
    """A Django WSGI app with this MIDDLEWARE (after django_apps() configured Django); the
    middleware instances are built here, so they read ``rampup_setting`` if one is given."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    if rampup_setting is None:
        with override_settings(MIDDLEWARE=middleware):
            return WSGIHandler()
    with override_settings(MIDDLEWARE=middleware, RAMPUP=rampup_setting):
        return WSGIHandler()


# Django's URLconf: this module. The 5-flag variants request /five, which Django tries after
# "" (one failed route comparison more than the bare app: counted against rampup).
def _django_views() -> list[Any]:
    from django.http import HttpResponse
    from django.urls import path

    def hello(request: Any) -> Any:
        return HttpResponse(BODY, content_type="text/plain; charset=utf-8")

    def hello5(request: Any) -> Any:
        read_five()
        return HttpResponse(BODY, content_type="text/plain; charset=utf-8")

    return [path("", hello), path("five", hello5)]


def wsgi_environs(framework: str) -> dict[str, dict[str, Any]]:
    out = {}
    for v, kind in REQUEST_OF.items():
        env = environ_for(kind)
        if framework == "django" and v in "cde":
            env["PATH_INFO"] = "/five"
        out[v] = env
    return out


def ref_requests(reqs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The --ab ref's variants send the same requests as this copy's."""
    if REF is None:
        return reqs
    return {**reqs, **{f"{v}@ref": reqs[v] for v in AB_VARIANTS}}


def ref_module(name: str) -> Any:
    """A submodule of the --ab ref's package, e.g. ``rampup_ref.wsgi``."""
    return importlib.import_module(f"{REF.__name__}.{name}")


def reader_of(variant: str) -> Any:
    return REF.flags if variant.endswith("@ref") else flags


# ---------------------------------------------------------------------------------------------
# ASGI (plain, Starlette)

_REQ = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> dict[str, Any]:
    return _REQ


async def _send(message: Any) -> None:
    return None


def scope_for(kind: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request_headers(kind)
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def plain_asgi_apps() -> tuple[dict[str, Any], str]:
    """A plain ASGI app (no framework): issue 11's budget names bare ASGI beside bare WSGI."""
    from rampup.asgi import RampupMiddleware

    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }
    body = {"type": "http.response.body", "body": BODY}

    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await send(dict(start))  # a fresh message per request, as an app builds one
        await send(dict(body))

    async def hello5(scope: Any, receive: Any, send: Any) -> None:
        read_five()
        await hello(scope, receive, send)

    def mw(app: Any) -> Any:
        return RampupMiddleware(app, flags=FLAGS, **MW_OPTIONS)

    apps = {
        "a": hello,
        "b": mw(hello),
        "c": mw(hello5),
        "d": mw(hello5),
        "e": mw(hello5),
        "f": FloorASGI(hello),
    }
    if REF is not None:
        ref_mw = ref_module("asgi").RampupMiddleware
        apps["b@ref"] = ref_mw(hello, flags=FLAGS, **OPTIONS)
        apps["c@ref"] = ref_mw(hello5, flags=FLAGS, **OPTIONS)
        apps["d@ref"] = ref_mw(hello5, flags=FLAGS, **OPTIONS)
    return apps, "rampup.asgi.RampupMiddleware(app, flags=..., user_header=...)"


def starlette_apps() -> tuple[dict[str, Any], str]:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rampup.asgi import RampupMiddleware

    async def hello(request: Any) -> Any:
        return PlainTextResponse(BODY.decode())

    async def hello5(request: Any) -> Any:
        read_five()
        return PlainTextResponse(BODY.decode())

    def make(view: Any, with_rampup: bool, floor: bool = False, ref: bool = False) -> Any:
        app = Starlette(routes=[Route("/", view)])
        if with_rampup:
            app.add_middleware(RampupMiddleware, flags=FLAGS, **MW_OPTIONS)
        if ref:
            app.add_middleware(ref_module("asgi").RampupMiddleware, flags=FLAGS, **OPTIONS)
        if floor:
            app.add_middleware(FloorASGI)
        return app

    apps = {
        "a": make(hello, False),
        "b": make(hello, True),
        "c": make(hello5, True),
        "d": make(hello5, True),
        "e": make(hello5, True),
        "f": make(hello, False, floor=True),
    }
    if REF is not None:
        apps["b@ref"] = make(hello, False, ref=True)
        apps["c@ref"] = make(hello5, False, ref=True)
        apps["d@ref"] = make(hello5, False, ref=True)
    return apps, "app.add_middleware(rampup.asgi.RampupMiddleware, flags=..., user_header=...)"


def asgi_runner(app: Any, scope0: dict[str, Any], reader: Any = flags) -> Callable[[int], Any]:
    async def arun(n: int) -> float:
        use_reader(reader)
        t0 = time.perf_counter()
        for _ in range(n):
            await app(dict(scope0), _receive, _send)
        return time.perf_counter() - t0

    return arun


async def asgi_call(app: Any, scope: dict[str, Any], reader: Any = flags) -> dict[str, Any]:
    use_reader(reader)
    msgs: list[dict[str, Any]] = []
    scope = _Recording(scope)

    async def send(m: Any) -> None:
        msgs.append(m)

    await app(scope, _receive, send)
    start = next(m for m in msgs if m["type"] == "http.response.start")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    body = b"".join(m.get("body", b"") for m in msgs if m["type"] == "http.response.body")
    return {
        "status": start["status"],
        "headers": headers,
        "body": body,
        "flags": scope.seen,
    }


# ---------------------------------------------------------------------------------------------

FRAMEWORKS: dict[str, Callable[[], tuple[dict[str, Any], str]]] = {
    "wsgi": plain_wsgi_apps,
    "asgi": plain_asgi_apps,
    "flask": flask_apps,
    "django": django_apps,
    "starlette": starlette_apps,
}
ASYNC_FRAMEWORKS = ("asgi", "starlette")


class CheckFailed(AssertionError):
    """A variant did not answer or decide as expected: its numbers would mean nothing."""


def _require(ok: Any, where: str, *detail: Any) -> None:
    if not ok:
        raise CheckFailed(where, *detail)


def check(framework: str, variant: str, res: dict[str, Any]) -> None:
    """Every variant answers 200 Hello, world!; rampup variants decided what they should."""
    where = f"{framework}/{variant}"
    variant = variant.removesuffix("@ref")  # an --ab ref's variant answers as this copy's
    _require(res["status"] == 200, where, res["status"])
    _require(res["body"] == BODY, where, res["body"])
    f = res["flags"]
    if variant in "af":
        _require(f is None, where, "bare app or floor has rampup.flags")
        return
    _require(f is not None, where, "no rampup.flags in environ/scope")
    if variant == "b":
        _require(not f.decisions, where, f.decisions)
        return
    _require(list(f.decisions) == list(READ), where, list(f.decisions))
    for key, want in EXPECTED_BOOLS.items():
        _require(f.decisions[key].value is want, where, key, f.decisions[key])
    cookies = [
        v.strip() for k, v in res["headers"] if k.lower() == "set-cookie" and "rampup_id=" in v
    ]
    want_key = {"c": ANON_ID, "d": USER_ID}.get(variant, f.minted)
    _require(want_key is not None, where, "no id minted for a new visitor")
    _require(f.subject.key == want_key, where, f.subject.key, want_key)
    if variant == "e":
        _require(cookies, where, "minted id not set as a cookie")
        _require(cookies[0].startswith(f"rampup_id={f.minted}"), where, cookies)
    else:
        _require(not cookies, where, "a cookie was set for a known subject", cookies)


def requests_for(framework: str) -> dict[str, dict[str, Any]]:
    if framework in ASYNC_FRAMEWORKS:
        return {v: scope_for(kind) for v, kind in REQUEST_OF.items()}
    return wsgi_environs(framework)


def measure(framework: str, args: argparse.Namespace) -> dict[str, list[float]] | None:
    """req/s samples per variant (with --ab, the ref's too), or None if skipped."""
    try:
        apps, how = FRAMEWORKS[framework]()
    except ImportError as exc:
        print(f"\n## {framework}: SKIPPED ({exc})")
        return None
    reqs = ref_requests(requests_for(framework))
    is_async = framework in ASYNC_FRAMEWORKS
    for v, app in apps.items():
        if is_async:
            res = asyncio.run(asgi_call(app, dict(reqs[v]), reader_of(v)))
        else:
            res = wsgi_call(app, dict(reqs[v]), reader_of(v))
        check(framework, v, res)
    f = (
        asyncio.run(asgi_call(apps["c"], dict(reqs["c"])))
        if is_async
        else wsgi_call(apps["c"], dict(reqs["c"]))
    )["flags"]
    reader = f.runtime.overrides
    print(f"\n## {framework}: {how}")
    print(
        f"   override reader: {'on (' + type(reader).__name__ + ')' if reader else 'off'}; "
        "responses checked (200, body, subject key, decisions, Set-Cookie only for e)"
    )
    if REF is not None:
        ref_f = (
            asyncio.run(asgi_call(apps["c@ref"], dict(reqs["c@ref"]), REF.flags))
            if is_async
            else wsgi_call(apps["c@ref"], dict(reqs["c@ref"]), REF.flags)
        )["flags"]
        print(
            f"   listeners per request (defaults): this copy {_listener_names(f)}; "
            f"{args.ab} {_listener_names(ref_f)}"
        )
        print(
            f"   --ab: b, c, d also through {REF.__name__} ({args.ab}), same rounds"
            + (
                "; one settings module, the ref's middleware in MIDDLEWARE"
                if framework == "django"
                else ""
            )
        )
    h.log(f"timing {framework}: {len(apps)} variants x {args.rounds} rounds...")
    if is_async:
        return h.run_async(
            {v: asgi_runner(app, reqs[v], reader_of(v)) for v, app in apps.items()},
            args.rounds,
            args.target,
        )
    return h.run_sync(
        {v: wsgi_runner(app, reqs[v], reader_of(v)) for v, app in apps.items()},
        args.rounds,
        args.target,
    )


def report(framework: str, summary: dict[str, dict[str, float]], misses: list[str]) -> None:
    print(
        "\n| variant | req/s | µs/req | ratio vs a | min-max ratio | added µs/req | target "
        "| verdict |"
    )
    print("|---|---:|---:|---:|---|---:|---|---|")
    for v, d in summary.items():
        target = verdict = ""
        if v == "b" and framework in RATIO_TARGET:
            want = RATIO_TARGET[framework]
            target = f"ratio >= {want}"
            verdict = "PASS" if d["ratio"] >= want else "MISS"
        elif v in "cd":
            target = f"<= {ADDED_TARGET_US:.0f} µs added"
            verdict = "PASS" if d["added_us"] <= ADDED_TARGET_US else "MISS"
        elif v == "b":
            target = "(no ratio target: bare app is ~1 µs)"
        elif v == "f" and framework in RATIO_TARGET:
            want = RATIO_TARGET[framework]
            target = f"(the b target {want}: {'within' if d['ratio'] >= want else 'out of'} reach)"
        if verdict == "MISS":
            misses.append(
                f"{framework} {v} ({LABELS[v]}): ratio {d['ratio']:.3f}, +{d['added_us']:.2f} µs"
            )
        print(
            f"| {v}: {LABELS[v]} | {d['median_rps']:,.0f} | {d['us_per_req']:.2f} | "
            f"{d['ratio']:.3f} | {d['ratio_min']:.3f}-{d['ratio_max']:.3f} | "
            f"{d['added_us']:+.2f} | {target} | {verdict} |"
        )
    if "b" in summary and "f" in summary:
        b, f = summary["b"], summary["f"]
        print(
            f"\nrampup's own work at 0 flags, beyond the floor: "
            f"{b['added_us'] - f['added_us']:+.2f} µs/req (b minus f)"
        )


# ---------------------------------------------------------------------------------------------
# --ab REF: this copy against the ref's middleware, and issue 11's speed budget


def _us(samples: list[float]) -> list[float]:
    return [1e6 / x for x in samples]


def _diff_us(samples: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of µs/req num - den, both timed in the same round."""
    return statistics.median(
        a - b for a, b in zip(_us(samples[num]), _us(samples[den]), strict=True)
    )


def _listener_names(f: Any) -> str:
    """The listeners a request's middleware runs by default (this copy adds an outcome
    recorder, and OpenTelemetry's listener when opentelemetry-api is installed): part of what
    the A/B compares."""
    runtime = f.runtime
    found = getattr(runtime, "all_listeners", None)
    if found is None:
        found = getattr(getattr(runtime, "settings", None), "listeners", ())
    return ", ".join(type(x).__name__ for x in found) or "none"


def report_ab(ref: str, measured: dict[str, dict[str, list[float]]], misses: list[str]) -> None:
    print(f"\n## A/B: this working copy vs {ref} (same rounds; this / ref < 1: this copy faster)")
    print(f"\n| framework | variant | this µs/req | {ref} µs/req | this / {ref} |")
    print("|---|---|---:|---:|---:|")
    for fw, samples in measured.items():
        for v in AB_VARIANTS:
            this, old = _us(samples[v]), _us(samples[f"{v}@ref"])
            ratio = statistics.median(a / b for a, b in zip(this, old, strict=True))
            print(
                f"| {fw} | {v}: {LABELS[v]} | {statistics.median(this):.2f} "
                f"| {statistics.median(old):.2f} | {ratio:.3f} |"
            )
    print(
        f"\nissue 11 speed budget (medians of same-round differences, µs/req; the verdict is "
        f"this copy's, {ref} beside it)"
    )
    print(f"\n| framework | budget | this | {ref} | target | verdict |")
    print("|---|---|---:|---:|---|---|")
    lines = [("b", "f", "0 flags above the floor (b - f)", FLOOR_BUDGET_US, True)]
    for v in "cd":
        lines.append(
            (v, "b", f"5 flags above 0 flags ({v} - b, {SUBJECT_OF[v]})", FIVE_BUDGET_US, False)
        )
    for fw, samples in measured.items():
        for num, den, label, limit, everywhere in lines:
            this = _diff_us(samples, num, den)
            den_ref = den if den == "f" else f"{den}@ref"  # the floor has no ref version
            old = _diff_us(samples, f"{num}@ref", den_ref)
            if everywhere or fw in FIVE_BUDGET_FRAMEWORKS:
                target = f"<= {limit:.1f} µs"
                verdict = "PASS" if this <= limit else "MISS"
            else:
                target, verdict = "(reported)", ""
            if verdict == "MISS":
                misses.append(f"issue 11 budget: {fw} {label}: {this:+.2f} µs")
            print(f"| {fw} | {label} | {this:+.2f} | {old:+.2f} | {target} | {verdict} |")


# ---------------------------------------------------------------------------------------------
# --breakdown: what each part of the WSGI middleware costs per request (timeit, GC on)


def _per_call_us(stmt: Callable[[], Any], target_s: float) -> float:
    t = timeit.Timer(stmt, setup="gc.enable()", globals={"gc": __import__("gc")})
    n = max(1000, int(1000 * target_s / t.timeit(1000)))
    return min(t.repeat(5, n)) / n * 1e6


def breakdown(target_s: float) -> None:
    from rampup.context import bind, unbind
    from rampup.wsgi import RampupMiddleware, WSGIView

    env0 = environ_for("cookie")

    def noop_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return []

    mw = RampupMiddleware(noop_app, flags=FLAGS, **OPTIONS)
    runtime = mw.runtime
    secret_mw = RampupMiddleware(noop_app, flags=FLAGS, override_secret=SECRET, **OPTIONS)

    def call(app: Any) -> Callable[[], None]:
        def go() -> None:
            it = app(dict(env0), _start_response)
            for _ in it:
                pass
            close = getattr(it, "close", None)
            if close is not None:
                close()

        return go

    def opened() -> Any:
        return runtime.open(dict(env0), WSGIView)

    def decide_all(f: Any) -> None:
        for key in READ:
            f.enabled(key)

    def five_reads() -> None:
        decide_all(opened())

    def five_reads_secret() -> None:
        decide_all(secret_mw.runtime.open(dict(env0), WSGIView))

    def resolve() -> None:
        opened()._resolve()

    def cookie_parse() -> None:
        WSGIView(dict(env0)).cookie("rampup_id")

    snap = runtime.source.snapshot
    subject = opened().subject

    def evaluate_five() -> None:
        ev = snap.evaluate
        for key in READ:
            ev(key, subject)

    def ctx() -> None:
        unbind(bind(None))  # type: ignore[arg-type]

    def headers_none() -> None:
        runtime.headers(opened())

    rows = [
        ("dict(environ) copy (the harness, every variant)", lambda: dict(env0)),
        ("bare no-op WSGI app call + iterate", call(noop_app)),
        ("RampupMiddleware around the no-op app (0 flags read)", call(mw)),
        ("  WSGIView(environ)", lambda: WSGIView(env0)),
        ("  runtime.open(view) -> RequestFlags", opened),
        ("  ContextVar set + reset", ctx),
        ("  runtime.headers(f), nothing read", headers_none),
        ("open + resolve subject (cookie id)", resolve),
        ("  WSGIView.cookie(): parse the Cookie header", cookie_parse),
        ("open + 5 flag reads (Flags.enabled)", five_reads),
        ("open + 5 flag reads, override reader on (secret set)", five_reads_secret),
        ("5 x snapshot.evaluate, subject prebuilt", evaluate_five),
    ]
    print("\n## breakdown: rampup.wsgi.RampupMiddleware, per request (best of 5, GC on)")
    print("| part | µs |")
    print("|---|---:|")
    for label, fn in rows:
        print(f"| {label} | {_per_call_us(fn, target_s):.2f} |")


def profile(framework: str, n: int) -> None:
    apps, _ = FRAMEWORKS[framework]()
    reqs = requests_for(framework)
    app, req = apps["c"], reqs["c"]
    pr = cProfile.Profile()
    if framework in ASYNC_FRAMEWORKS:
        run = asgi_runner(app, req)
        asyncio.run(run(200))
        pr.enable()
        asyncio.run(run(n))
    else:
        run_sync = wsgi_runner(app, req)
        run_sync(200)
        pr.enable()
        run_sync(n)
    pr.disable()
    print(f"\n## cProfile: {framework} variant c ({LABELS['c']}), {n:,} requests, by own time")
    pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--target", type=float, default=0.3, help="seconds per variant per round")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: validates, noisy")
    ap.add_argument("--frameworks", default="wsgi,asgi,flask,django,starlette")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the parts of the WSGI middleware one by one",
    )
    ap.add_argument(
        "--profile",
        metavar="FRAMEWORK",
        help="instead of timing, cProfile 20,000 requests of variant c",
    )
    ap.add_argument(
        "--ab",
        metavar="REF",
        help="also time variants b, c, d with this git ref's middleware (e.g. main, 9492cd6)",
    )
    ap.add_argument(
        "--telemetry",
        choices=("auto", "off"),
        default="auto",
        help="this copy's telemetry option (default auto: an outcome recorder and, with\n"
        "opentelemetry-api installed, RampupTelemetry on every request); off: no\n"
        "RampupTelemetry (the outcome recorder always runs)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.target = 3, 0.05
    if args.profile:
        profile(args.profile, 20_000)
        return 0
    if args.ab:
        global REF
        REF = h.import_ref(args.ab)
    if args.telemetry == "off":
        global MW_OPTIONS
        MW_OPTIONS = {**OPTIONS, "telemetry": "off"}

    print(f"rampup {rampup.__version__} bench_middleware: {h.machine_line()}")
    print(f"{args.rounds} rounds, ~{args.target}s per variant per round, in-process")
    if args.telemetry == "off":
        print(
            "--telemetry off: this copy's middleware runs no RampupTelemetry (its OutcomeRecorder "
            "stays: rampup always counts requests in its outcome book)"
        )
    misses: list[str] = []
    measured: dict[str, dict[str, list[float]]] = {}
    for fw in [f.strip() for f in args.frameworks.split(",") if f.strip()]:
        if fw not in FRAMEWORKS:
            ap.error(f"unknown framework {fw!r}; known: {', '.join(FRAMEWORKS)}")
        samples = measure(fw, args)
        if samples is not None:
            measured[fw] = samples
            ours = {v: s for v, s in samples.items() if not v.endswith("@ref")}
            report(fw, h.summarize_rps(ours, "a"), misses)
    if args.ab and measured:
        report_ab(args.ab, measured, misses)
    if args.breakdown:
        breakdown(args.target)
    print(f"\nsummary: {len(misses)} target(s) missed" + "".join(f"\n  MISS {m}" for m in misses))
    if args.quick:
        print("(--quick: 3 short rounds; fine to validate the script, too noisy to quote)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
