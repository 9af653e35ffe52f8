"""rampup.flags is isolated between concurrent asyncio requests and between threads."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import wsgiref.util
from collections.abc import Iterable
from typing import Any

import rampup
from rampup import Subject
from rampup.asgi import RampupMiddleware as ASGIMiddleware
from rampup.types import Message, Receive, Scope, Send
from rampup.wsgi import RampupMiddleware as WSGIMiddleware

# Several splits so that subjects differ from one another in many flags at once.
FLAGS = {
    "flags": {
        "half": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "tenth": {"rules": [{"split": {"on": 10, "off": 90}}]},
        "colour": {
            "variants": {"red": "r", "green": "g", "blue": "b", "grey": "y"},
            "default": "grey",
            "rules": [{"split": {"red": 25, "green": 25, "blue": 25, "grey": 25}}],
        },
        "size": {
            "variants": {"s": 1, "m": 2, "l": 3},
            "default": "m",
            "rules": [{"split": {"s": 33.34, "m": 33.33, "l": 33.33}}],
        },
    }
}
KEYS = list(FLAGS["flags"])
SNAPSHOT = rampup.load(FLAGS)


def expected(user: str) -> dict[str, Any]:
    return {
        "user": user,
        "variants": {k: SNAPSHOT.evaluate(k, Subject(user)).variant for k in KEYS},
    }


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads each flag through the ContextVar proxy, yielding to other tasks between reads."""
    variants = {}
    for key in KEYS:
        await asyncio.sleep(0)
        variants[key] = rampup.flags.variant(key)
    await asyncio.sleep(0)
    body = {"user": rampup.flags.subject.key, "variants": variants}
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def test_500_concurrent_asyncio_requests_do_not_leak() -> None:
    """500 interleaved requests, each for a different user, each see only their own decisions."""
    mw = ASGIMiddleware(asgi_app, flags=FLAGS, user_header="X-User-Id")
    users = [f"user-{i}" for i in range(500)]
    started = 0

    async def one(user: str) -> dict[str, Any]:
        nonlocal started
        scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "scheme": "http",
            "headers": [(b"x-user-id", user.encode())],
            "query_string": b"",
        }
        body: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                body.append(message["body"])

        started += 1
        await mw(scope, receive, send)
        return dict(json.loads(b"".join(body)))

    async def main() -> list[dict[str, Any]]:
        results = await asyncio.gather(*(one(u) for u in users))
        return list(results)

    results = asyncio.run(main())
    assert started == 500
    assert results == [expected(u) for u in users]
    # the subjects really differ, so a leak would have shown
    assert len({json.dumps(r["variants"], sort_keys=True) for r in results}) > 20
    assert not rampup.flags.bound


def test_8_threads_through_wsgi_do_not_leak() -> None:
    """8 threads, each its own user, interleaving many requests: no decision crosses over."""
    turn = threading.Barrier(8)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        variants = {}
        for key in KEYS:
            time.sleep(0)  # let other threads run between reads
            variants[key] = rampup.flags.variant(key)
        body = {"user": rampup.flags.subject.key, "variants": variants}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    mw = WSGIMiddleware(wsgi_app, flags=FLAGS, user_header="X-User-Id")
    results: dict[str, list[dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def worker(user: str) -> None:
        try:
            turn.wait(timeout=30)
            got = []
            for _ in range(50):
                environ: dict[str, Any] = {"HTTP_X_USER_ID": user}
                wsgiref.util.setup_testing_defaults(environ)
                body = mw(environ, lambda status, headers, exc_info=None: None)
                got.append(json.loads(b"".join(body)))
                getattr(body, "close", lambda: None)()
            results[user] = got
        except BaseException as exc:  # reported below, with the thread's name
            errors.append(exc)

    users = [f"thread-user-{i}" for i in range(8)]
    threads = [threading.Thread(target=worker, args=(u,), name=u) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for user in users:
        assert results[user] == [expected(user)] * 50
    assert len({json.dumps(results[u][0]["variants"], sort_keys=True) for u in users}) > 1
