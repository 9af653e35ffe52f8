"""Real servers on 127.0.0.1 for the browser test: a Flask app under wsgiref (threaded) and a
FastAPI app under uvicorn, each with rampup reading the Redis store and the dashboard mounted."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .clients import PREFIX, authorize

HANG_GUARD = 20.0


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no access log in test output
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def flask_app(store_url: str) -> Any:
    """A shop in Flask: /banner and /checkout read flags; the dashboard under /_rampup."""
    from flask import Flask, g

    from rampup.dashboard.flask import mount
    from rampup.flask import Rampup

    app = Flask("shop")
    Rampup(app, flags=store_url, user_header="X-User-Id")

    @app.get("/banner")
    def banner() -> dict[str, Any]:
        return {"winter_banner": g.flags.value("winter-banner")}

    @app.get("/checkout")
    def checkout() -> Any:
        button = g.flags.variant("checkout-button")
        # the orange button is broken: the dashboard must show that variant in red
        return ({"button": button}, 500 if button == "orange" else 200)

    mount(app, PREFIX, flags=store_url, authorize=authorize)
    return app


def fastapi_app(store_url: str) -> Any:
    """The same shop in FastAPI, the dashboard mounted with Starlette's Mount."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.routing import Mount

    import rampup
    from rampup.asgi import RampupMiddleware
    from rampup.dashboard.starlette import dashboard

    app = FastAPI()

    @app.get("/banner")
    def banner() -> dict[str, Any]:
        return {"winter_banner": rampup.flags.value("winter-banner")}

    @app.get("/checkout")
    def checkout() -> Any:
        button = rampup.flags.variant("checkout-button")
        return JSONResponse({"button": button}, 500 if button == "orange" else 200)

    app.router.routes.append(Mount(PREFIX, app=dashboard(store_url, authorize=authorize)))
    app.add_middleware(RampupMiddleware, flags=store_url, user_header="X-User-Id")
    return app


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """``app`` under wsgiref in a thread on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, server_class=_Threading, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="wsgiref")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HANG_GUARD)


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on 127.0.0.1; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit it: without, a response written in two sends waits ~40 ms for
    # the client's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http="h11", ws="none", log_config=None, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + HANG_GUARD
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(HANG_GUARD)
        sock.close()
