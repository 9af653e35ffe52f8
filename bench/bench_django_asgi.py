#!/usr/bin/env python
"""Django under ASGI, in-process: what rampup's middleware adds to ``ASGIHandler`` requests.

Django's ``ASGIHandler`` is called directly in a loop on one event loop (no server); the
requests, flags and options are bench_middleware's. Variants, timed in the same rounds:

  a  bare Django (no middleware)
  b  rampup, the view reads 0 flags
  c  rampup, the view reads 5 flags, subject from a valid ``rampup_id`` cookie
  d  rampup, the view reads 5 flags, subject from the ``X-User-Id`` header
  f  the floor: an async-capable middleware that only binds a ContextVar
  g  a sync-only floor (``async_capable = False``): Django adapts it with sync_to_async and
     the rest of the chain with async_to_sync, a thread hop each way. This is what rampup would
     cost under ASGI if its middleware were not async-capable.

What to read: b - f is rampup's own cost under ASGI; g - f is the cost of a sync/async
adaptation. rampup's middleware is ``sync_capable`` and ``async_capable`` and marks itself a
coroutine function when Django gives it an async ``get_response``, so Django adapts nothing
(tests/adapters/test_django.py checks that the middleware runs on the event loop's thread).
The views are async, so that Django runs them on the loop too. Django itself hops a thread
per request under ASGI (``response.close()`` through ``sync_to_async``), bare app included.

Usage: python bench/bench_django_asgi.py [--rounds 15] [--target 0.3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h
import bench_middleware as bm

import rampup

_FLOOR: ContextVar[Any] = ContextVar("bench.floor")
#: the Flags each view saw, for the checks before timing
SEEN: list[Any] = []


class FloorAsync:
    """In MIDDLEWARE as f"{__name__}.FloorAsync": async-capable, binds a ContextVar."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import markcoroutinefunction

        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        token = _FLOOR.set(request)
        try:
            return await self.get_response(request)
        finally:
            _FLOOR.reset(token)


class FloorSync:
    """The same, sync only: Django must adapt it under ASGI."""

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


def _views() -> list[Any]:
    from django.http import HttpResponse
    from django.urls import path

    async def hello(request: Any) -> Any:
        SEEN.append(getattr(request, "flags", None))
        return HttpResponse(bm.BODY, content_type="text/plain; charset=utf-8")

    async def hello5(request: Any) -> Any:
        bm.read_five()
        SEEN.append(getattr(request, "flags", None))
        return HttpResponse(bm.BODY, content_type="text/plain; charset=utf-8")

    return [path("", hello), path("five", hello5)]


def apps() -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.test.utils import override_settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY=bm.SECRET,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        USE_I18N=False,
        DATABASES={},
        LOGGING_CONFIG=None,
        RAMPUP={"FLAGS": bm.FLAGS, **{k.upper(): v for k, v in bm.OPTIONS.items()}},
    )
    django.setup()
    globals()["urlpatterns"] = _views()

    def handler(middleware: list[str]) -> Any:
        with override_settings(MIDDLEWARE=middleware):
            app = ASGIHandler()
            app.load_middleware(is_async=True)
            return app

    mw = ["rampup.django.RampupMiddleware"]
    return {
        "a": handler([]),
        "b": handler(mw),
        "c": handler(mw),
        "d": handler(mw),
        "f": handler([f"{__name__}.FloorAsync"]),
        "g": handler([f"{__name__}.FloorSync"]),
    }


def scopes() -> dict[str, dict[str, Any]]:
    out = {}
    for v in "abcdfg":
        scope = bm.scope_for({"d": "header"}.get(v, "cookie"))
        if v in "cd":
            scope["path"], scope["raw_path"] = "/five", b"/five"
        out[v] = scope
    return out


def receiver() -> Callable[[], Any]:
    """A request's ``receive``: the body once, then (as a server does until the client goes)
    nothing, so that Django's disconnect listener waits until it is cancelled."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.get_running_loop().create_future()  # never resolved
        return {"type": "http.disconnect"}

    return receive


async def call(app: Any, scope: dict[str, Any]) -> tuple[int, bytes]:
    msgs: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        msgs.append(m)

    await app(dict(scope), receiver(), send)
    start = next(m for m in msgs if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in msgs[1:])


def runner(app: Any, scope0: dict[str, Any]) -> Callable[[int], Any]:
    async def arun(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await app(dict(scope0), receiver(), bm._send)
        return time.perf_counter() - t0

    return arun


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--target", type=float, default=0.3, help="seconds per variant per round")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: validates, noisy")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.target = 3, 0.05
    handlers, reqs = apps(), scopes()
    for v, app in handlers.items():  # every variant answers, and rampup's read what it should
        SEEN.clear()
        status, body = asyncio.run(call(app, reqs[v]))
        assert (status, body) == (200, bm.BODY), (v, status, body)
        f = SEEN[0]
        assert (f is None) == (v in "afg"), (v, f)
        if v in "cd":
            assert list(f.decisions) == list(bm.READ), (v, list(f.decisions))
    print(f"rampup {rampup.__version__} bench_django_asgi: {h.machine_line()}")
    print(f"{args.rounds} rounds, ~{args.target}s per variant per round, in-process ASGIHandler")
    samples = h.run_async(
        {v: runner(app, reqs[v]) for v, app in handlers.items()}, args.rounds, args.target
    )
    summary = h.summarize_rps(samples, "a")
    labels = {
        "a": "bare Django (ASGI)",
        "b": "rampup, 0 flags read",
        "c": "rampup, 5 flags, cookie id",
        "d": "rampup, 5 flags, X-User-Id",
        "f": "floor, async-capable",
        "g": "floor, sync-only (adapted)",
    }
    print("\n| variant | req/s | µs/req | ratio vs a | added µs/req vs a |")
    print("|---|---:|---:|---:|---:|")
    for v, d in summary.items():
        print(
            f"| {v} {labels[v]} | {d['median_rps']:,.0f} | {d['us_per_req']:.1f} "
            f"| {d['ratio']:.3f} | {d['added_us']:+.1f} |"
        )
    us = {v: d["us_per_req"] for v, d in summary.items()}
    print(f"\nrampup above the async floor (b - f): {us['b'] - us['f']:+.1f} µs/req (budget 1.0)")
    print(f"5 flags above 0 (c - b): {us['c'] - us['b']:+.1f} µs/req (budget 5.0)")
    print(f"a sync/async adaptation (g - f): {us['g'] - us['f']:+.1f} µs/req")
    if args.quick:
        print("(--quick: 3 short rounds; fine to validate the script, too noisy to quote)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
