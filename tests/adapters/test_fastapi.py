"""rampup.fastapi: the Flags dependency, flag_required and identify, through FastAPI's client."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import pytest

from timeless import timeless_examples

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi import Depends, FastAPI, Header, HTTPException, WebSocket

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns at import when only httpx is
    # installed; either works for these tests.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import rampup
from rampup import Subject, UnboundFlagsError
from rampup.fastapi import Flags, FlagsDep, RampupMiddleware, flag_required, get_flags, identify

FLAGS = {
    "segments": {
        "staff": {
            "conditions": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}]
        }
    },
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "new-checkout": {"rules": [{"segments": ["staff"], "serve": "on"}]},
        "button": {
            "variants": {"blue": "#00f", "green": "#0f0"},
            "default": "blue",
            "rules": [{"segments": ["staff"], "serve": "green"}],
        },
    },
}


class User:
    def __init__(self, uid: str, email: str) -> None:
        self.id = uid
        self.email = email


USERS = {"t-ann": User("ann", "ann@example.com"), "t-bob": User("bob", "bob@elsewhere.org")}


def current_user(authorization: Annotated[str | None, Header()] = None) -> User | None:
    """A stand-in auth dependency: a bearer token names a user."""
    token = (authorization or "").removeprefix("Bearer ")
    return USERS.get(token)


user_flags = identify(current_user, key=lambda u: {"key": u.id, "email": u.email})


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RampupMiddleware, flags=FLAGS, **options)

    @app.get("/")
    def index(flags: Flags = Depends(get_flags)) -> dict[str, Any]:  # noqa: B008
        return {
            "split": flags.variant("split"),
            "key": flags.subject.key,
            "same": flags is rampup.context.current(),
        }

    @app.get("/annotated")
    async def annotated(flags: FlagsDep) -> dict[str, Any]:
        return {"split": flags.variant("split")}

    @app.get("/checkout", dependencies=[Depends(flag_required("new-checkout"))])
    def checkout() -> dict[str, str]:
        return {"page": "new checkout"}

    @app.get("/green", dependencies=[Depends(flag_required("button", "green"))])
    def green() -> dict[str, str]:
        return {"button": "green"}

    @app.get("/me")
    def me(flags: Flags = Depends(user_flags)) -> dict[str, Any]:  # noqa: B008
        # rampup.flags is the same object, with the identified subject, in a sync endpoint
        return {
            "key": rampup.flags.subject.key,
            "new-checkout": flags.enabled("new-checkout"),
            "button": rampup.flags.variant("button"),
            "split": flags.variant("split"),
        }

    @app.get("/fail")
    def fail() -> None:
        raise HTTPException(status_code=418, detail="teapot")

    return app


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(make_app()) as c:
        yield c


def test_get_flags_dependency(client: TestClient) -> None:
    """Depends(get_flags) gives the request's Flags, the one rampup.flags reads."""
    resp = client.get("/")
    body = resp.json()
    assert body["same"] is True
    assert body["split"] in ("on", "off")
    assert resp.cookies["rampup_id"] == body["key"]
    assert client.get("/annotated").json()["split"] == body["split"]  # the cookie came back


def test_flag_required_404_unless_served(client: TestClient) -> None:
    """flag_required answers 404 unless the flag is on (or serves the named variant)."""
    assert client.get("/checkout").status_code == 404
    assert client.get("/green").status_code == 404
    staff = {"Authorization": "Bearer t-ann"}
    app = make_app(user=lambda scope: {"key": "ann", "email": "ann@example.com"})
    with TestClient(app) as c:
        assert c.get("/checkout", headers=staff).json() == {"page": "new checkout"}
        assert c.get("/green", headers=staff).json() == {"button": "green"}


def test_identify_makes_the_auth_user_the_subject(client: TestClient) -> None:
    """identify(current_user, key=...) makes the dependency's user the subject of the request."""
    ann = client.get("/me", headers={"Authorization": "Bearer t-ann"})
    assert ann.json()["key"] == "ann"
    assert ann.json()["new-checkout"] is True
    assert ann.json()["button"] == "green"
    assert "set-cookie" not in ann.headers  # a known user needs no anonymous id
    bob = client.get("/me", headers={"Authorization": "Bearer t-bob"}).json()
    assert bob["key"] == "bob"
    assert bob["new-checkout"] is False
    assert bob["split"] == rampup.load(FLAGS).evaluate("split", Subject("bob")).variant


def test_identify_without_a_user_stays_anonymous() -> None:
    """No user from the auth dependency: the request keeps its anonymous id."""
    with TestClient(make_app()) as c:
        resp = c.get("/me")
    assert resp.json()["key"] == resp.cookies["rampup_id"]


def test_identify_variants_of_the_key_callable() -> None:
    """key= may return a plain key or a Subject; without key= the user itself is the key;
    a key callable that raises leaves the request anonymous."""

    def one_app(dep: Any) -> FastAPI:
        app = FastAPI()
        app.add_middleware(RampupMiddleware, flags=FLAGS)

        @app.get("/")
        def view(flags: Flags = Depends(dep)) -> dict[str, Any]:  # noqa: B008
            return {"key": flags.subject.key, "email": flags.subject.get("email")}

        return app

    def boom(u: User) -> str:
        raise ValueError("bad key callable")

    cases = [
        (identify(current_user, key=lambda u: u.id), {"key": "ann", "email": None}),
        (
            identify(current_user, key=lambda u: Subject(u.id, {"email": u.email})),
            {"key": "ann", "email": "ann@example.com"},
        ),
        (identify(lambda: "plain-key"), {"key": "plain-key", "email": None}),
    ]
    for dep, expected in cases:
        with TestClient(one_app(dep)) as c:
            assert c.get("/", headers={"Authorization": "Bearer t-ann"}).json() == expected
    with TestClient(one_app(identify(current_user, key=boom))) as c:
        resp = c.get("/", headers={"Authorization": "Bearer t-ann"})
    assert resp.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", resp.json()["key"])


def test_http_exceptions_keep_their_status(client: TestClient) -> None:
    """The app's own HTTPException responses go out as the app made them."""
    resp = client.get("/fail")
    assert resp.status_code == 418
    assert resp.json() == {"detail": "teapot"}


def test_get_flags_without_middleware_says_how_to_fix() -> None:
    """Using the dependency without the middleware fails loudly with the fix."""
    app = FastAPI()

    @app.get("/")
    def index(flags: Flags = Depends(get_flags)) -> None:  # noqa: B008
        pass

    with TestClient(app) as c, pytest.raises(UnboundFlagsError, match="add_middleware"):
        c.get("/")


def test_import_guard_names_the_extra() -> None:
    """Without FastAPI installed, importing rampup.fastapi says what to pip install."""
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n    import rampup.fastapi\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.startswith("MissingDependency")
    assert 'pip install "rampup[fastapi]"' in out


def test_app_wide_identify_reaches_flag_required() -> None:
    """identify() as an app dependency runs before route guards, so they see the user."""
    app = FastAPI(dependencies=[Depends(user_flags)])
    app.add_middleware(RampupMiddleware, flags=FLAGS)

    @app.get("/checkout", dependencies=[Depends(flag_required("new-checkout"))])
    def checkout() -> dict[str, str]:
        return {"page": "new checkout"}

    with TestClient(app) as c:
        assert c.get("/checkout").status_code == 404
        assert c.get("/checkout", headers={"Authorization": "Bearer t-bob"}).status_code == 404
        ok = c.get("/checkout", headers={"Authorization": "Bearer t-ann"})
        assert ok.json() == {"page": "new checkout"}


def test_example_app_serves_its_story(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """examples/fastapi_app.py: the signed-in staff user gets the new checkout and the guarded
    route; an anonymous visitor gets the old checkout, a cookie and a 404."""
    import importlib.util

    # without the date ramp: the anonymous visitor's random id gets the old checkout on any date
    path = timeless_examples(tmp_path) / "fastapi_app.py"
    spec = importlib.util.spec_from_file_location("fastapi_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
    spec.loader.exec_module(module)
    ann = {"Authorization": "Bearer ann"}
    with TestClient(module.app) as c:
        anon = c.get("/")
        assert 'href="/checkout"' in anon.text
        assert "rampup_id" in anon.cookies
        assert "Hello ann" in c.get("/", headers=ann).text
        assert 'href="/checkout/new"' in c.get("/", headers=ann).text
        assert c.get("/checkout/new").status_code == 404
        assert c.get("/checkout/new", headers=ann).json()["checkout"] == "new"
        assert c.get("/flags.json", headers=ann).json()["new-checkout"] is True


def test_websocket_endpoint_reads_flags_through_the_dependency() -> None:
    """A FastAPI websocket endpoint gets the connection's Flags from get_flags and
    rampup.flags, with the subject from the handshake's header."""
    app = FastAPI()
    app.add_middleware(RampupMiddleware, flags=FLAGS, user_header="X-User-Id", watch=False)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, flags: FlagsDep) -> None:
        await websocket.accept()
        same = flags is websocket.state.flags
        await websocket.send_json(
            {"same": same, "subject": flags.subject.key, "split": rampup.flags.variant("split")}
        )
        await websocket.close()

    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers={"X-User-Id": "ws-7"}) as conn,
    ):
        got = conn.receive_json()
    expected = rampup.load(FLAGS).evaluate("split", Subject("ws-7")).variant
    assert got == {"same": True, "subject": "ws-7", "split": expected}
