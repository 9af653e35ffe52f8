"""End to end: a Starlette app with the middleware, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from timeless import timeless_flags

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("starlette")

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import rampup
from rampup.asgi import RampupMiddleware

DEADLINE = 20.0


def gateway_user(scope: Any) -> dict[str, Any] | None:
    """The subject from headers an auth gateway sets (never trust them from the internet)."""
    headers = Request(scope).headers
    if "x-user-id" not in headers:
        return None
    return {"key": headers["x-user-id"], "email": headers.get("x-user-email")}


async def checkout(request: Request) -> Response:
    flags = request.state.flags
    return JSONResponse(
        {
            "new_checkout": rampup.flags.enabled("new-checkout"),
            "button": flags.variant("checkout-button"),
            "key": flags.subject.key,
        }
    )


def make_app(flags: Path) -> Starlette:
    app = Starlette(routes=[Route("/checkout", checkout)])
    app.add_middleware(RampupMiddleware, flags=flags, user=gateway_user)
    return app


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server in a thread, on a port the OS picked; stopped at the end. It serves
    the example flags without the date ramp, so the minted anonymous id is off on any date."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(timeless_flags(tmp_path)),
        lifespan="on",
        http="h11",
        ws="none",
        log_config=None,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


def test_real_server_staff_and_anonymous(base_url: str) -> None:
    """Over real HTTP: a staff user (per gateway headers) gets new-checkout; an anonymous
    visitor gets an id cookie once a split was read, and keeps their bucket with it."""
    with httpx.Client(base_url=base_url, timeout=DEADLINE, trust_env=False) as client:
        staff = client.get(
            "/checkout", headers={"X-User-Id": "u-1", "X-User-Email": "dev@example.com"}
        )
        assert staff.status_code == 200
        assert staff.json()["new_checkout"] is True
        assert staff.json()["key"] == "u-1"
        assert "set-cookie" not in staff.headers

        anon = client.get("/checkout")
        assert anon.status_code == 200
        assert anon.json()["new_checkout"] is False
        cookie = anon.headers["set-cookie"]
        minted = anon.cookies["rampup_id"]
        assert cookie.startswith(f"rampup_id={minted}; ")
        assert "HttpOnly" in cookie
        assert anon.json()["key"] == minted

        again = client.get("/checkout")  # the client sends the cookie back
        assert again.json() == anon.json()
        assert "set-cookie" not in again.headers
