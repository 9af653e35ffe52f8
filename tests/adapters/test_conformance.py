"""The same behaviours through every adapter, each driven by its framework's own test client.

A new adapter joins by adding an :class:`Adapter` to ``ADAPTERS``: the app it builds serves
the routes below, and every test here must pass for it.

Routes: ``/read/<key>`` (``variant|reason`` of ``key`` via ``rampup.flags``), ``/none`` (reads
nothing), ``/identify`` (the framework's request flags ``.identify("u-1")``, then
``variant|subject`` of ``split``), ``/boom`` (raises :class:`Boom`), ``/stream`` (a streamed
body that reads ``split`` while streaming), ``/redirect`` (302) and ``/not-modified`` (304),
both after reading ``split``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("fastapi")

import rampup
from django_setup import configure_django
from rampup import Reason, Snapshot

configure_django()

FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "plain": {"default": "on"},
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "locked": {"default": "off", "overridable": False},
    },
}
ANON = "0123456789abcdef0123456789abcdef"


class Boom(Exception):
    """What the app raises on /boom."""


class BrokenSource:
    """Serves its first snapshot (at start-up), then raises on every read."""

    def __init__(self) -> None:
        self._snapshot = rampup.load(FLAGS)
        self.reads = 0

    @property
    def snapshot(self) -> Snapshot:
        self.reads += 1
        if self.reads > 1:
            raise OSError("the flag store is down")
        return self._snapshot


def _read(key: str) -> str:
    d = rampup.flags.decision(key)
    return f"{d.variant}|{d.reason.value}"


def _identify(f: Any) -> str:
    f.identify("u-1")
    return f"{f.variant('split')}|{f.subject.key}"


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def anon_cookies(self) -> list[str]:
        return [c for c in self.all("set-cookie") if c.startswith("rampup_id=")]


Get = Callable[..., Resp]


@dataclass
class Adapter:
    name: str
    #: (flags, nested, options) -> get(path, method="GET", headers=None) -> Resp
    build: Callable[..., Get]


# -- WSGI and Flask --------------------------------------------------------------------------
def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise Boom("from the app")
    if path == "/stream":

        def body() -> Iterator[bytes]:
            yield b"start|"
            yield rampup.flags.variant("split").encode()  # type: ignore[union-attr]

        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()
    if path == "/identify":
        text = _identify(environ["rampup.flags"])
    elif path.startswith("/read/"):
        text = _read(path[6:])
    elif path in ("/redirect", "/not-modified"):
        rampup.flags.variant("split")
        status = "302 Found" if path == "/redirect" else "304 Not Modified"
        start_response(status, [("Location", "/")])
        return []
    else:
        text = "none"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text.encode()] if environ["REQUEST_METHOD"] != "HEAD" else []


def _werkzeug_get(app: Any) -> Get:
    from werkzeug.test import Client

    def get(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Resp:
        r = Client(app, use_cookies=False).open(path, method=method, headers=headers or {})
        try:
            return Resp(r.status_code, list(r.headers.items()), r.get_data(as_text=True))
        finally:
            r.close()

    return get


def build_wsgi(flags: Any, nested: bool = False, **options: Any) -> Get:
    from rampup.wsgi import RampupMiddleware

    app: Any = RampupMiddleware(_wsgi_app, flags, **options)
    return _werkzeug_get(RampupMiddleware(app, flags, **options) if nested else app)


def build_flask(flags: Any, nested: bool = False, **options: Any) -> Get:
    from flask import Flask, Response, g, redirect

    from rampup.flask import Rampup
    from rampup.wsgi import RampupMiddleware

    app = Flask(__name__)
    app.testing = True
    Rampup(app, flags, **options)
    if nested:
        app.wsgi_app = RampupMiddleware(app.wsgi_app, flags, **options)  # type: ignore[method-assign]
    app.add_url_rule("/read/<key>", "read", _read)
    app.add_url_rule("/none", "none", lambda: "none")
    app.add_url_rule("/identify", "identify", lambda: _identify(g.flags))

    @app.get("/boom")
    def boom() -> str:
        raise Boom("from the app")

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            yield "start|"
            yield str(rampup.flags.variant("split"))

        return Response(body())

    @app.get("/redirect")
    def to_root() -> Any:
        rampup.flags.variant("split")
        return redirect("/")

    @app.get("/not-modified")
    def not_modified() -> Response:
        rampup.flags.variant("split")
        return Response(status=304)

    return _werkzeug_get(app)


# -- ASGI, Starlette, FastAPI ----------------------------------------------------------------
async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/boom":
        raise Boom("from the app")
    status, headers, chunks = 200, [(b"content-type", b"text/plain")], [b"none"]
    if path == "/identify":
        chunks = [_identify(scope["state"]["flags"]).encode()]
    elif path.startswith("/read/"):
        chunks = [_read(path[6:]).encode()]
    elif path in ("/redirect", "/not-modified"):
        rampup.flags.variant("split")
        status, headers, chunks = (302 if path == "/redirect" else 304), [(b"location", b"/")], []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if path == "/stream":
        await send({"type": "http.response.body", "body": b"start|", "more_body": True})
        chunks = [str(rampup.flags.variant("split")).encode()]
    body = b"".join(chunks) if scope["method"] != "HEAD" else b""
    await send({"type": "http.response.body", "body": body})


def _testclient_get(app: Any) -> Get:
    from starlette.testclient import TestClient

    def get(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Resp:
        client = TestClient(app, follow_redirects=False)
        r = client.request(method, path, headers=headers or {})
        return Resp(r.status_code, list(r.headers.multi_items()), r.text)

    return get


def build_asgi(flags: Any, nested: bool = False, **options: Any) -> Get:
    from rampup.asgi import RampupMiddleware

    app: Any = RampupMiddleware(_asgi_app, flags, **options)
    return _testclient_get(RampupMiddleware(app, flags, **options) if nested else app)


def _starlette_routes(flags_of: Callable[[Any], Any]) -> list[Any]:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.responses import StreamingResponse as Streaming
    from starlette.routing import Route

    async def read(request: Request) -> Response:
        return PlainTextResponse(_read(request.path_params["key"]))

    async def none(request: Request) -> Response:
        return PlainTextResponse("none")

    async def identify(request: Request) -> Response:
        return PlainTextResponse(_identify(flags_of(request)))

    async def boom(request: Request) -> Response:
        raise Boom("from the app")

    async def stream(request: Request) -> Response:
        async def body() -> Any:
            yield b"start|"
            yield str(rampup.flags.variant("split")).encode()

        return Streaming(body())

    async def to_root(request: Request) -> Response:
        rampup.flags.variant("split")
        return RedirectResponse("/", status_code=302)

    async def not_modified(request: Request) -> Response:
        rampup.flags.variant("split")
        return Response(status_code=304)

    return [
        Route("/read/{key}", read, methods=["GET", "HEAD"]),
        Route("/none", none),
        Route("/identify", identify),
        Route("/boom", boom),
        Route("/stream", stream),
        Route("/redirect", to_root),
        Route("/not-modified", not_modified),
    ]


def build_starlette(flags: Any, nested: bool = False, **options: Any) -> Get:
    from starlette.applications import Starlette

    from rampup.asgi import RampupMiddleware

    app = Starlette(routes=_starlette_routes(lambda request: request.state.flags))
    for _ in range(2 if nested else 1):
        app.add_middleware(RampupMiddleware, flags=flags, **options)
    return _testclient_get(app)


def build_fastapi(flags: Any, nested: bool = False, **options: Any) -> Get:
    from fastapi import FastAPI

    from rampup.asgi import RampupMiddleware
    from rampup.fastapi import get_flags

    app = FastAPI()
    app.router.routes.extend(_starlette_routes(get_flags))
    for _ in range(2 if nested else 1):
        app.add_middleware(RampupMiddleware, flags=flags, **options)
    return _testclient_get(app)


# -- Django, sync and async ------------------------------------------------------------------
def _django_urls() -> list[Any]:
    from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
    from django.urls import path

    def read(request: Any, key: str) -> HttpResponse:
        return HttpResponse(_read(key))

    def boom(request: Any) -> HttpResponse:
        raise Boom("from the app")

    def stream(request: Any) -> StreamingHttpResponse:
        def body() -> Iterator[bytes]:
            yield b"start|"
            yield str(rampup.flags.variant("split")).encode()

        return StreamingHttpResponse(body())

    async def astream(request: Any) -> StreamingHttpResponse:
        async def body() -> Any:
            yield b"start|"
            yield str(rampup.flags.variant("split")).encode()

        return StreamingHttpResponse(body())

    def to_root(request: Any) -> HttpResponse:
        rampup.flags.variant("split")
        return HttpResponseRedirect("/")

    def not_modified(request: Any) -> HttpResponse:
        rampup.flags.variant("split")
        return HttpResponse(status=304)

    return [
        path("read/<str:key>", read),
        path("none", lambda request: HttpResponse("none")),
        path("identify", lambda request: HttpResponse(_identify(request.flags))),
        path("boom", boom),
        path("stream", stream),
        path("astream", astream),
        path("redirect", to_root),
        path("not-modified", not_modified),
    ]


urlpatterns = _django_urls()


def _django_resp(r: Any, text: str) -> Resp:
    headers = list(r.items()) + [("Set-Cookie", m.OutputString()) for m in r.cookies.values()]
    return Resp(r.status_code, headers, text)


def build_django(flags: Any, nested: bool = False, is_async: bool = False, **options: Any) -> Get:
    from django.test import AsyncClient, Client, override_settings

    rampup_setting = {"FLAGS": flags, "WATCH": False, **{k.upper(): v for k, v in options.items()}}
    middleware = ["rampup.django.RampupMiddleware"] * (2 if nested else 1)

    # One client per app, as Django loads the middleware once per handler; its cookie jar
    # is emptied before each request and carries the Cookie header asked for.
    client: Any = AsyncClient() if is_async else Client()

    def get(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Resp:
        headers = dict(headers or {})
        client.cookies.clear()
        client.cookies.load(headers.pop("Cookie", ""))
        with override_settings(RAMPUP=rampup_setting, MIDDLEWARE=middleware, ROOT_URLCONF=__name__):
            if not is_async:
                r = client.generic(method, path, headers=headers)
                text = b"".join(r.streaming_content if r.streaming else [r.content])
                return _django_resp(r, text.decode())

            async def run() -> Resp:
                r = await client.generic(
                    method, path.replace("/stream", "/astream"), headers=headers
                )
                if r.streaming:
                    text = b"".join([c async for c in r.streaming_content])
                else:
                    text = r.content
                return _django_resp(r, text.decode())

            return asyncio.run(run())

    return get


ADAPTERS = [
    Adapter("wsgi", build_wsgi),
    Adapter("asgi", build_asgi),
    Adapter("flask", build_flask),
    Adapter("django", build_django),
    Adapter("django-async", lambda *a, **k: build_django(*a, is_async=True, **k)),
    Adapter("starlette", build_starlette),
    Adapter("fastapi", build_fastapi),
]


@pytest.fixture(params=ADAPTERS, ids=[a.name for a in ADAPTERS])
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param  # type: ignore[no-any-return]


def build(adapter: Adapter, flags: Any = FLAGS, nested: bool = False, **options: Any) -> Get:
    options.setdefault("watch", False)
    if adapter.name.startswith("django"):
        options.pop("watch")
    return adapter.build(flags, nested, **options)


# -- the behaviours --------------------------------------------------------------------------
def test_cookie_is_minted_only_when_a_split_was_read(adapter: Adapter) -> None:
    """Reading a split sets one rampup_id cookie; a constant flag or no read sets none."""
    get = build(adapter)
    split = get("/read/split")
    assert split.status == 200
    assert split.text.split("|")[1] == Reason.SPLIT.value
    [cookie] = split.anon_cookies()
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert get("/read/plain").anon_cookies() == []
    assert get("/none").anon_cookies() == []


def test_sticky_across_requests(adapter: Adapter) -> None:
    """A visitor who sends their rampup_id back keeps their variant and gets no new cookie."""
    get = build(adapter)
    variants = {get("/read/split", headers={"Cookie": f"rampup_id={ANON}"}).text for _ in range(3)}
    assert len(variants) == 1
    again = get("/read/split", headers={"Cookie": f"rampup_id={ANON}"})
    assert again.anon_cookies() == []


def test_override_header_is_honoured_and_reported_in_debug(adapter: Adapter) -> None:
    """In debug mode an unsigned override forces the variant and the report header says so."""
    get = build(adapter, debug=True)
    r = get("/read/plain", headers={"X-Rampup-Override": "plain=off"})
    assert r.text == f"off|{Reason.OVERRIDE.value}"
    [report] = r.all("x-rampup-overrides")
    assert "served plain=off" in report


def test_override_is_refused_by_a_flag_that_is_not_overridable(adapter: Adapter) -> None:
    """A non-overridable flag refuses the override, serves its own variant, and the report
    gives the refusal."""
    get = build(adapter, debug=True)
    r = get("/read/locked", headers={"X-Rampup-Override": "locked=on"})
    assert r.text == f"off|{Reason.DEFAULT.value}"
    [report] = r.all("x-rampup-overrides")
    assert "refused locked=on" in report


def test_override_is_ignored_when_overrides_are_off(adapter: Adapter) -> None:
    """With overrides off, the header changes nothing and no report is sent."""
    get = build(adapter, debug=True, overrides="off")
    r = get("/read/plain", headers={"X-Rampup-Override": "plain=off"})
    assert r.text == f"on|{Reason.DEFAULT.value}"
    assert r.all("x-rampup-overrides") == []


def test_unknown_flag_reads_as_off(adapter: Adapter) -> None:
    """An unknown flag serves no variant with reason UNKNOWN_FLAG; the request succeeds."""
    r = build(adapter)("/read/nope")
    assert (r.status, r.text) == (200, f"None|{Reason.UNKNOWN_FLAG.value}")


def test_source_raising_serves_every_flag_off(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    """A source that raises: every flag off (reason ERROR, not a "typo?" UNKNOWN_FLAG),
    nothing raised into the app, identify() still works on the request's flags, and the
    failure is logged."""
    get = build(adapter, BrokenSource())
    with caplog.at_level(logging.ERROR, logger="rampup"):
        plain = get("/read/plain")
        identified = get("/identify")
    assert (plain.status, plain.text) == (200, f"None|{Reason.ERROR.value}")
    assert (identified.status, identified.text) == (200, "None|u-1")
    assert plain.anon_cookies() == identified.anon_cookies() == []
    assert "could not open the request" in caplog.text


def test_user_callback_raising_leaves_the_request_anonymous(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    """A user callback that raises costs the identification, not the request: the subject is
    anonymous (a cookie is minted for the split) and the error is logged."""

    def user(request: Any) -> Any:
        raise RuntimeError("user callback bug")

    with caplog.at_level(logging.ERROR, logger="rampup"):
        r = build(adapter, user=user)("/read/split")
    assert r.status == 200
    assert len(r.anon_cookies()) == 1
    assert "resolving the request's subject failed" in caplog.text


def test_app_raising_propagates_unchanged(adapter: Adapter) -> None:
    """An exception from the app reaches the caller as the same exception."""
    with pytest.raises(Boom, match="from the app"):
        build(adapter)("/boom")
    assert not rampup.flags.bound


def test_streaming_body_reads_flags(adapter: Adapter) -> None:
    """A streamed body reads flags while it streams; a split read before the response
    started (here: none) sets no cookie, and the stream is complete."""
    r = build(adapter)("/stream", headers={"Cookie": f"rampup_id={ANON}"})
    start, variant = r.text.split("|")
    assert (r.status, start) == (200, "start")
    assert variant in ("on", "off")


def test_nested_middleware_sets_one_cookie(adapter: Adapter) -> None:
    """Two rampup layers in one stack act as one: one Flags, one cookie."""
    r = build(adapter, nested=True)("/read/split")
    assert r.status == 200
    assert len(r.anon_cookies()) == 1


@pytest.mark.parametrize(("path", "status"), [("/redirect", 302), ("/not-modified", 304)])
def test_redirects_and_not_modified_keep_the_cookie(
    adapter: Adapter, path: str, status: int
) -> None:
    """A 302 or 304 that read a split still sets the visitor's cookie, so they stay sticky."""
    r = build(adapter)(path)
    assert r.status == status
    assert len(r.anon_cookies()) == 1


def test_head_sets_the_cookie_and_sends_no_body(adapter: Adapter) -> None:
    """A HEAD request that reads a split gets the cookie and no body."""
    r = build(adapter)("/read/split", method="HEAD")
    assert (r.status, r.text) == (200, "")
    assert len(r.anon_cookies()) == 1
