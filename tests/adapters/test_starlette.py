"""Starlette with ``app.add_middleware(RampupMiddleware, ...)``, through Starlette's TestClient."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from timeless import timeless_examples, timeless_flags

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns at import when only httpx is
    # installed; either works for these tests.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import rampup
from rampup.asgi import SCOPE_KEY, RampupMiddleware
from rampup.context import current

FLAGS = {
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "plain": {"default": "on"},
        "staff-only": {
            "rules": [
                {
                    "conditions": [
                        {"attribute": "header.x-role", "op": "equals", "value": "staff"}
                    ],
                    "serve": "on",
                }
            ]
        },
    }
}


async def index(request: Request) -> Response:
    f = request.state.flags
    assert f is rampup.context.current()
    return JSONResponse(
        {"split": f.variant("split"), "key": f.subject.key, "plain": rampup.flags.enabled("plain")}
    )


async def stream(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"{i}:{rampup.flags.variant('split')};".encode()

    request.state.flags.variant("split")
    return StreamingResponse(body(), media_type="text/plain")


BOOM = LookupError("the app's own")


async def boom(request: Request) -> Response:
    request.state.flags.variant("split")
    raise BOOM


async def staff(request: Request) -> Response:
    if not request.state.flags.enabled("staff-only"):
        raise HTTPException(404)
    return PlainTextResponse("staff page")


async def not_modified(request: Request) -> Response:
    request.state.flags.variant("split")
    return Response(status_code=304)


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "bound": rampup.flags.bound,
            "same": websocket.state.flags is current(),
            "state": sorted(websocket.scope.get("state", {})),
            "staff": rampup.flags.enabled("staff-only"),
            "subject": rampup.flags.subject.key,
        }
    )
    await websocket.close()


async def debug(request: Request) -> Response:
    reader = request.scope[SCOPE_KEY].runtime.overrides
    return JSONResponse({"debug": reader is not None and reader.debug})


events: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    events.append(f"startup bound={rampup.flags.bound}")
    yield {"db": "connected"}
    events.append("shutdown")


def make_app(flags: Any = FLAGS, debug_mode: bool = False, **options: Any) -> Starlette:
    routes = [
        Route("/", index),
        Route("/stream", stream),
        Route("/boom", boom),
        Route("/staff", staff),
        Route("/304", not_modified),
        Route("/debug", debug),
        WebSocketRoute("/ws", ws),
    ]
    app = Starlette(debug=debug_mode, routes=routes, lifespan=lifespan)
    app.add_middleware(RampupMiddleware, flags=flags, **options)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(make_app()) as c:
        yield c


def test_request_state_flags_and_cookie(client: TestClient) -> None:
    """request.state.flags is the request's Flags; a split read mints the id cookie."""
    resp = client.get("/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["split"] in ("on", "off")
    assert body["plain"] is True
    assert resp.cookies["rampup_id"] == body["key"]
    again = client.get("/")  # the client sends the cookie back: same bucket, no new cookie
    assert again.json() == body
    assert "set-cookie" not in again.headers


def test_options_pass_through_add_middleware() -> None:
    """Keyword options given to add_middleware reach rampup (here: the user header)."""
    with TestClient(make_app(user_header="X-User-Id")) as c:
        resp = c.get("/", headers={"X-User-Id": "user-7"})
    assert resp.json()["key"] == "user-7"
    assert "set-cookie" not in resp.headers


def test_unknown_option_is_rejected_with_the_known_ones() -> None:
    """A typo in an option fails at start-up, listing the valid names."""
    with (
        pytest.raises(TypeError, match=r"did you mean .user_header") as info,
        TestClient(make_app(user_headr="X-User-Id")) as c,
    ):
        c.get("/")
    assert "user_header" in str(info.value)


def test_streaming_response_streams_with_cookie(client: TestClient) -> None:
    """A StreamingResponse streams its chunks, reads flags while streaming, and gets the cookie."""
    with client.stream("GET", "/stream") as resp:
        chunks = list(resp.iter_bytes())
        assert "rampup_id" in resp.cookies
    text = b"".join(chunks).decode()
    variant = text.split(";")[0].split(":")[1]
    assert text == "".join(f"{i}:{variant};" for i in range(3))


def test_guarded_route_and_error_statuses_keep_the_cookie(client: TestClient) -> None:
    """A flag-guarded route 404s for others and serves staff; 304 still carries a minted id."""
    assert client.get("/staff").status_code == 404
    assert client.get("/staff", headers={"X-Role": "staff"}).text == "staff page"
    resp = client.get("/304")
    assert resp.status_code == 304
    assert "rampup_id=" in resp.headers["set-cookie"]


def test_websocket_gets_flags_from_the_handshake() -> None:
    """A websocket endpoint reads rampup.flags and websocket.state.flags (the same Flags), with
    the subject from the handshake's headers and cookies."""
    with (
        TestClient(make_app(user_header="X-User-Id")) as client,
        client.websocket_connect("/ws", headers={"X-User-Id": "ws-user"}) as conn,
    ):
        got = conn.receive_json()
        anon = "a" * 32
        with client.websocket_connect("/ws", headers={"Cookie": f"rampup_id={anon}"}) as conn2:
            assert conn2.receive_json()["subject"] == anon
    assert got["bound"] is True
    assert got["same"] is True
    assert got["state"] == ["db", "flags"]
    assert got["subject"] == "ws-user"


def test_lifespan_passes_through() -> None:
    """Lifespan startup and shutdown run, and lifespan state reaches requests."""
    events.clear()
    with TestClient(make_app()) as c:
        assert events == ["startup bound=False"]
        assert c.get("/").status_code == 200
    assert events == ["startup bound=False", "shutdown"]


@pytest.mark.parametrize("debug_mode", [True, False])
def test_debug_mode_is_visible_to_rampup(debug_mode: bool) -> None:
    """Starlette's debug flag is read from request.app, lazily, for the override policy."""
    with TestClient(make_app(debug_mode=debug_mode)) as c:
        assert c.get("/debug").json() == {"debug": debug_mode}


def test_flag_file_and_template(tmp_path: Path) -> None:
    """With a flag file on disk, a Jinja2 template reads flags through rampup.flags."""
    jinja2 = pytest.importorskip("jinja2")
    from starlette.templating import Jinja2Templates

    (tmp_path / "page.html").write_text(
        "{% if flags.enabled('new-checkout') %}new{% else %}old{% endif %} checkout, "
        "button {{ flags.value('checkout-button') }}"
    )
    templates = Jinja2Templates(
        env=jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), autoescape=True)
    )
    templates.env.globals["flags"] = rampup.flags

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "page.html")

    app = Starlette(routes=[Route("/page", page)])
    # the example flags without the date ramp: the random anonymous id is off on any date
    flags = timeless_flags(tmp_path)
    app.add_middleware(RampupMiddleware, flags=flags, user_header="X-User-Id", watch=False)
    with TestClient(app) as c:
        qa = c.get("/page", headers={"X-User-Id": "qa-alice"})
        anon = c.get("/page")
    assert qa.text.startswith("new checkout, button #")
    assert anon.text.startswith("old checkout, button #")
    assert "rampup_id" in anon.cookies


def test_example_app_serves_its_story(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """examples/starlette_app.py: anonymous visitors get the old checkout and a cookie,
    staff the new one; the guarded route 404s for anonymous visitors."""
    import importlib.util

    # without the date ramp: the anonymous visitor's random id gets the old checkout on any date
    path = timeless_examples(tmp_path) / "starlette_app.py"
    spec = importlib.util.spec_from_file_location("starlette_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
    spec.loader.exec_module(module)
    staff = {"X-User-Id": "ann", "X-User-Email": "ann@example.com"}
    with TestClient(module.app) as c:
        anon = c.get("/")
        assert 'href="/checkout"' in anon.text
        assert "rampup_id" in anon.cookies
        assert 'href="/checkout/new"' in c.get("/", headers=staff).text
        assert c.get("/checkout/new", headers={"Cookie": ""}).status_code == 404
        assert c.get("/checkout/new", headers=staff).text.startswith("new checkout")
        assert set(c.get("/flags.json").json()) >= {"new-checkout", "checkout-button"}


@pytest.mark.parametrize(("debug_mode", "warnings_expected"), [(True, 0), (False, 1)])
def test_open_policy_warns_once_and_only_outside_debug(
    caplog: pytest.LogCaptureFixture, debug_mode: bool, warnings_expected: int
) -> None:
    """overrides="open" is decided at the first request, once Starlette's debug flag is
    known: silent in debug mode, one warning otherwise."""

    async def read(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(rampup.flags.variant("plain")))

    app = Starlette(debug=debug_mode, routes=[Route("/", read)])
    app.add_middleware(RampupMiddleware, flags={"flags": {"plain": {}}}, overrides="open")
    with TestClient(app) as client:
        for _ in range(3):
            forced = client.get("/", headers={"X-Rampup-Override": "plain=on"}).text
            assert forced == "on"
    warned = [r for r in caplog.records if "overrides='open' outside debug" in r.getMessage()]
    assert len(warned) == warnings_expected


def test_bad_flag_file_with_add_middleware_serves_flags_off_until_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette builds add_middleware's stack at the first ASGI call, too late to fail the
    deploy: an invalid file then serves every flag as off (no 500s), logged as critical, and
    the fixed file is picked up; reads say the file is invalid, never "a typo?" for a flag the
    file defines. Wrapping the app at import time still raises ConfigError."""
    path = tmp_path / "flags.toml"
    path.write_text('[flags.x]\ndefault = "maybe"\n')

    async def read(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(rampup.flags.enabled("x")))

    app = Starlette(routes=[Route("/", read)])
    app.add_middleware(RampupMiddleware, flags=str(path))
    with TestClient(app) as client:
        assert [client.get("/").text for _ in range(3)] == ["False"] * 3
        assert "serving every flag as off" in caplog.text
        assert "flags.x.default" in caplog.text
        assert "not defined" not in caplog.text
        assert f"no flags are served (the flag file {path} is invalid)" in caplog.text
        path.write_text("[flags.x]\ndefault = 'on'\n")
        mw = app.middleware_stack
        while not isinstance(mw, RampupMiddleware):
            mw = mw.app  # type: ignore[attr-defined]
        assert mw.runtime.source.reload()  # type: ignore[attr-defined]
        assert client.get("/").text == "True"

    path.write_text('[flags.x]\ndefault = "maybe"\n')
    with pytest.raises(rampup.ConfigError):
        RampupMiddleware(app, flags=str(path))
