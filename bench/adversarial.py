#!/usr/bin/env python
"""Adversarial figures for docs/security.md: correctness counts, not timings.

Four runs, each printing one table row per case (run one with its name, or all):

* ``requests``: fuzzed requests through each adapter's own test client (WSGI, ASGI, Flask,
  Django, Starlette, FastAPI): hostile overrides, cookies, baggage, user ids, 8 KB headers,
  4,301-digit versions and numbers, regex-hostile User-Agents, non-ASCII bytes. Counts the
  exceptions that escaped the middleware and the 5xx answers (the app itself never fails).
* ``forgeries``: tampered, truncated, re-signed, wrong-secret, expired, over-long-lived and
  rebound tokens checked by the override reader. Counts the ones accepted.
* ``documents``: the hostile documents of issue 12 plus random mutations, each loaded by a
  worker process limited to 500 MB of address space with a 10 s budget per document.
  Counts the outcome classes (loaded / located ConfigError / anything else).
* ``storm``: a FileSource polling every 10 ms while writers rewrite the file (atomic renames,
  in-place writes, writers stalling mid-write for 3 polls, same-size edits with the mtime put
  back; bursts with a quiet second now and then) and reader threads evaluate flags. Counts
  answers, failures and half files served
  (every complete version defines the flag ``sentinel``; a half file does not).

Usage: python bench/adversarial.py [requests|forgeries|documents|storm ...] [--quick]
Each run takes well under 2 minutes on a loaded 2-core machine (--quick: seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import rampup  # noqa: E402
from rampup import Subject  # noqa: E402
from rampup._signing import derive_keys, sign, verify  # noqa: E402
from rampup.sources import FileSource  # noqa: E402

SECRET = "adversarial-secret-0123456789abcdef-0123456789"
# The catastrophic pattern of issue 12 where RE2 runs it; a plain one where the loader would
# refuse it (Python's re).
_RE2 = importlib.util.find_spec("re2") is not None
FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        "admin": {"default": "off", "overridable": False},
        "version": {
            "rules": [
                {
                    "conditions": [
                        {"attribute": "header.X-App-Version", "op": "semver_gte", "value": "2.0.0"}
                    ],
                    "serve": "on",
                }
            ]
        },
        "score": {
            "rules": [
                {
                    "conditions": [{"attribute": "header.X-Score", "op": "gte", "value": 10}],
                    "serve": "on",
                }
            ]
        },
        "agent": {
            "rules": [
                {
                    "conditions": [
                        {
                            "attribute": "header.User-Agent",
                            "op": "matches",
                            "value": "^(\\w+\\s?)*$" if _RE2 else "^Mozilla/\\w+",
                        }
                    ],
                    "serve": "on",
                }
            ]
        },
    },
}
KEYS = tuple(FLAGS["flags"])


def _hostile_values(rng: random.Random) -> dict[str, str]:
    """A random set of hostile request headers."""
    good = sign("button=green", int(time.time()) + 600, SECRET)
    pool: dict[str, list[str]] = {
        "X-Rampup-Override": [
            good,
            good[:-3] + "abc",
            "button=green," * 400,
            "v1." + "A" * 5000 + ".x",
            "admin=on",
            "v1..",
            "=,=,=",
            "button=" + "g" * 300,
            sign("button=green", int(time.time()) + 10**8, SECRET),
            sign("button=green", int(time.time()) - 5, SECRET),
            sign("button=green", int(time.time()) + 600, SECRET, subject="someone-else"),
            sign("button=green", int(time.time()) + 600, "wrong-secret-0123456789abcdef-01234"),
        ],
        "Cookie": [
            "rampup_id=" + "x" * 5000,
            "rampup_id=\x7f\x01",
            'rampup_override="button=green"',
            "rampup_override=" + good,
            ";;;=;=",
            "a=" + "b" * 8000,
        ],
        "baggage": ["rampup.override=" + good, "rampup.override=%ZZ", "k=v," * 300],
        "X-App-Version": ["9" * 4301, "2.0.0", "v" + "1." * 2000, "2.0.0-" + "a." * 500],
        "X-Score": ["9" * 5000, "1e999", "nan", "-inf", "12"],
        "User-Agent": ["a" * 24 + "!", "a " * 4000, "Mozilla/5.0", "é" * 100],
        "X-User-Id": ["", " ", "u" * 300, "\x00", "user-1"],
    }
    return {k: rng.choice(v) for k, v in pool.items() if rng.random() < 0.6}


def _decisions() -> dict[str, str]:
    return {k: str(rampup.flags.variant(k)) for k in KEYS}


def _adapters() -> dict[str, Callable[[dict[str, str]], int]]:
    """name -> send(headers) -> status, each through the framework's own test client."""
    warnings.filterwarnings("ignore")
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY=SECRET,
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=["rampup.django"],
            DATABASES={},
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["rampup.django.RampupMiddleware"],
            RAMPUP={"FLAGS": FLAGS, "WATCH": False, "USER_HEADER": "X-User-Id"},
        )
        django.setup()
    from django.test import Client as DjangoClient
    from fastapi import FastAPI
    from flask import Flask, jsonify
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from rampup.asgi import RampupMiddleware as ASGIMiddleware
    from rampup.flask import Rampup
    from rampup.wsgi import RampupMiddleware as WSGIMiddleware

    opts = {"flags": FLAGS, "watch": False, "override_secret": SECRET, "user_header": "X-User-Id"}

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = repr(_decisions()).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    wsgi = WSGIMiddleware(wsgi_app, **opts)

    def send_wsgi(headers: dict[str, str]) -> int:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
        }
        for k, v in headers.items():
            # WSGI strings are latin-1: what a server decodes from arbitrary bytes
            environ["HTTP_" + k.upper().replace("-", "_")] = v.encode("utf-8", "replace").decode(
                "latin-1"
            )
        status: list[str] = []
        body = wsgi(environ, lambda s, h, e=None: status.append(s))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        return int(status[0][:3])

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        body = repr(_decisions()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    asgi = ASGIMiddleware(asgi_app, **opts)

    def send_asgi(headers: dict[str, str]) -> int:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "headers": [
                (k.lower().encode(), v.encode("utf-8", "replace")) for k, v in headers.items()
            ],
        }
        got: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                got.append(message["status"])

        asyncio.run(asgi(scope, receive, send))
        return got[0]

    flask_app = Flask(__name__)
    flask_app.config["SECRET_KEY"] = SECRET
    Rampup(flask_app, flags=FLAGS, watch=False, user_header="X-User-Id")
    flask_app.add_url_rule("/", "read", lambda: jsonify(_decisions()))
    flask_client = flask_app.test_client(use_cookies=False)

    django_client = DjangoClient()

    async def star_read(request: Any) -> JSONResponse:
        return JSONResponse(_decisions())

    star = Starlette(routes=[Route("/", star_read)])
    star.add_middleware(ASGIMiddleware, **opts)
    star_client = TestClient(star)

    fast = FastAPI()
    fast.get("/")(_decisions)
    fast.add_middleware(ASGIMiddleware, **opts)
    fast_client = TestClient(fast)

    def latin(headers: dict[str, str]) -> dict[str, str]:
        return {k: v.encode("utf-8", "replace").decode("latin-1") for k, v in headers.items()}

    def raw(headers: dict[str, str]) -> dict[str, bytes]:
        return {k: v.encode("utf-8", "replace") for k, v in headers.items()}

    return {
        "WSGI": send_wsgi,
        "ASGI": send_asgi,
        "Flask": lambda h: flask_client.get("/", headers=latin(h)).status_code,
        "Django": lambda h: django_client.get("/", headers=latin(h)).status_code,
        # httpx takes bytes for what is not ASCII (a str would fail in the client, not the app)
        "Starlette": lambda h: star_client.get("/", headers=raw(h)).status_code,
        "FastAPI": lambda h: fast_client.get("/", headers=raw(h)).status_code,
    }


urlpatterns: list[Any] = []


def _django_urls() -> None:
    from django.http import JsonResponse
    from django.urls import path

    urlpatterns.append(path("", lambda request: JsonResponse(_decisions())))


def run_requests(quick: bool) -> None:
    adapters = _adapters()
    _django_urls()
    n = 150 if quick else 2000
    print(f"\n## requests: {n} fuzzed requests per adapter")
    print("| adapter | requests | escaped exceptions | 5xx answers |\n|---|---:|---:|---:|")
    for name, send in adapters.items():
        rng = random.Random(name)
        escaped = server_errors = 0
        for _ in range(n):
            try:
                status = send(_hostile_values(rng))
            except Exception:
                escaped += 1
                continue
            server_errors += status >= 500
        print(f"| {name} | {n:,} | {escaped} | {server_errors} |")


def run_forgeries(quick: bool) -> None:
    from rampup.overrides import read_values

    snap = rampup.load(FLAGS)
    keys = derive_keys(SECRET)
    now = time.time()
    rng = random.Random(12)
    n = 500 if quick else 5000
    good = sign("button=green", int(now) + 600, SECRET)
    body, mac = good.split(".")[1:]
    kinds: dict[str, Callable[[], str]] = {
        "payload byte flipped": lambda: _flip(good, rng, 3, 3 + len(body)),
        "mac byte flipped": lambda: _flip(good, rng, 4 + len(body), len(good)),
        "truncated": lambda: good[: rng.randrange(len(good))],
        "wrong secret": lambda: sign(
            "button=green", int(now) + 600, f"guess-{rng.random()}-0123456789abcdef-0123"
        ),
        "1-char secret guessed": lambda: sign(
            "button=green", int(now) + 600, chr(rng.randrange(33, 127))
        ),
        "expired": lambda: sign("button=green", int(now) - rng.randrange(1, 10**6), SECRET),
        "lifetime over 30 days": lambda: sign(
            "button=green", int(now) + 31 * 86400 + rng.randrange(10**7), SECRET
        ),
        "bound to another subject": lambda: sign(
            "button=green", int(now) + 600, SECRET, subject=f"other-{rng.random()}"
        ),
        "mac moved to another payload": lambda: (
            "v1." + sign("admin=on", int(now) + 600, "x" * 40).split(".")[1] + "." + mac
        ),
        "non-overridable flag, valid token": lambda: sign("admin=on", int(now) + 600, SECRET),
    }
    print(f"\n## forgeries: {n} per kind, through the override reader (subject 'qa-1')")
    print("| kind | tried | accepted |\n|---|---:|---:|")
    total = accepted_total = 0
    for kind, make in kinds.items():
        accepted = 0
        for _ in range(n):
            state = read_values([(make(), "header")], snap, keys, now=now, subject="qa-1")
            accepted += bool(state.served)
        total += n
        accepted_total += accepted
        print(f"| {kind} | {n:,} | {accepted} |")
    assert verify(good, keys, now)[0] is not None  # the control: a genuine token verifies
    print(f"| **all** | {total:,} | {accepted_total} |")


def _flip(token: str, rng: random.Random, lo: int, hi: int) -> str:
    i = rng.randrange(lo, hi)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    c = rng.choice([a for a in alphabet if a != token[i]])
    return token[:i] + c + token[i + 1 :]


def run_documents(quick: bool) -> None:
    from hostile_docs import CASES, EXAMPLE, Worker, mutate

    n = 60 if quick else 600
    seeds = [(".toml", EXAMPLE.read_text()), *((s, t) for _, s, t in CASES[:5])]
    rng = random.Random(7)
    print(f"\n## documents: {len(CASES)} hostile cases + {n} mutations, 500 MB / 10 s each")
    print("| documents | loaded | located ConfigError | anything else |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp, Worker(Path(tmp)) as worker:
        for label, docs in (
            ("hostile cases", [(s, t) for _, s, t in CASES]),
            (
                "mutations",
                [(s, mutate(t, rng, rng.randrange(1, 7))) for s, t in rng.choices(seeds, k=n)],
            ),
        ):
            outcomes = Counter(worker.load(s, t) for s, t in docs)
            other = {k: v for k, v in outcomes.items() if k not in ("loaded", "config_error")}
            print(
                f"| {label} ({len(docs)}) | {outcomes['loaded']} | {outcomes['config_error']} | "
                f"{sum(other.values())} {dict(other) if other else ''} |"
            )


def _version(i: int) -> str:
    lines = ["version = 1", ""]
    for k in range(40):
        lines += [f"[flags.f{k}]", f'description = "version {i} flag {k}"', ""]
    lines += ["[flags.sentinel]", 'default = "on"', ""]  # last: a half file lacks it
    return "\n".join(lines)


def run_storm(quick: bool) -> None:
    seconds = 5.0 if quick else 30.0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.toml"
        path.write_text(_version(0))
        source = FileSource(path, interval=0.01)
        stop = threading.Event()
        counts: Counter[str] = Counter()
        lock = threading.Lock()

        half: set[int] = set()

        def reader() -> None:
            local: Counter[str] = Counter()
            subject = Subject("u")
            while not stop.is_set():
                for _ in range(50):
                    try:
                        snap = source.snapshot
                        ok = snap.evaluate("sentinel", subject).value is True
                        local["answered"] += 1
                        if not ok:
                            local["answers off a half file"] += 1
                            half.add(id(snap))
                    except Exception:
                        local["failed"] += 1
                time.sleep(0.001)  # let the writer and the watcher have the GIL too
            with lock:
                counts.update(local)

        def writer() -> None:
            rng = random.Random(3)
            i = 0
            while not stop.is_set():
                i += 1
                text = _version(i % 2)
                kind = rng.randrange(4)
                if kind == 0:  # atomic
                    tmp_path = path.with_name(f"flags.{i}.tmp")
                    tmp_path.write_text(text)
                    os.replace(tmp_path, path)
                elif kind == 1:  # in place, in one go
                    path.write_text(text)
                elif kind == 2:  # in place, stalled mid-write for three polls
                    cut = text.rfind("\n\n", 0, len(text) // 2) + 2  # a valid half
                    with open(path, "w") as fh:
                        fh.write(text[:cut])
                        fh.flush()
                        time.sleep(0.03)
                        fh.write(text[cut:])
                else:  # same size, mtime put back
                    st = path.stat()
                    path.write_text(_version((i + 1) % 2))
                    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                counts["writes"] += 1
                # bursts of writes, with a quiet second now and then for changes to settle
                time.sleep(1.2 if rng.random() < 0.1 else rng.uniform(0.0, 0.05))

        threads = [threading.Thread(target=reader) for _ in range(4)] + [
            threading.Thread(target=writer)
        ]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        source.close()
    print(f"\n## storm: {seconds:.0f} s, 4 reader threads, 1 writer, poll every 10 ms")
    print(
        "| writes | reloads | answered | failed | half files served (answers from them) |\n"
        "|---:|---:|---:|---:|---:|"
    )
    print(
        f"| {counts['writes']:,} | {source.reloads:,} | {counts['answered']:,} | "
        f"{counts['failed']} | {len(half)} ({counts['answers off a half file']:,}) |"
    )


RUNS = {
    "requests": run_requests,
    "forgeries": run_forgeries,
    "documents": run_documents,
    "storm": run_storm,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="*", help=f"any of {', '.join(RUNS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="a few seconds each: validates the script")
    args = ap.parse_args(argv)
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        ap.error(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    print(f"rampup {rampup.__version__} adversarial runs")
    for name in args.runs or RUNS:
        t0 = time.perf_counter()
        RUNS[name](args.quick)
        print(f"({name}: {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
