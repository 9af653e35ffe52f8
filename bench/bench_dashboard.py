#!/usr/bin/env python
"""Server-side render time of the dashboard's list page with 1,000 flags (issue 17: < 300 ms).

The flags are synthetic and varied (a third ramped, a third split three ways with colour values,
a few killed, guarded rollouts, rules with segments), the outcome book holds figures for 200 of
them, and the page is rendered through the WSGI app exactly as a browser request would be
(authorisation, CSRF token, security headers), without a network. Reported: the median over
``--rounds`` of each item, and the ratio of the full page to a baseline measured in the same
run: ``json.dumps`` of the same flags' plain data (the cost of touching every flag once).

Also timed: the same list filtered by a search (the page most people open at 2 a.m.), and one
flag's page. The machine is shared: these are not figures of record.

Usage: python bench/bench_dashboard.py [--rounds 7] [--flags 1000] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from typing import Any

from rampup import load
from rampup.dashboard import Dashboard
from rampup.outcomes import OutcomeSnapshot, VariantStats

TARGET_MS = 300.0


def flag_document(n: int) -> dict[str, Any]:
    """``n`` varied flags and three segments."""
    flags: dict[str, Any] = {}
    for i in range(n):
        key = f"flag-{i:04d}"
        kind = i % 6
        f: dict[str, Any] = {"description": f"Synthetic flag number {i} for the benchmark"}
        if kind == 0:
            f["rules"] = [
                {"segments": ["staff"], "serve": "on"},
                {
                    "ramp": [
                        {"from": "2026-01-01T00:00:00Z", "split": {"on": 1, "off": 99}},
                        {"from": "2026-06-01T00:00:00Z", "split": {"on": 50, "off": 50}},
                        {"from": "2099-01-01T00:00:00Z", "split": {"on": 100, "off": 0}},
                    ]
                },
            ]
        elif kind == 1:
            f["variants"] = {"blue": "#1f6feb", "green": "#2da44e", "orange": "#fb8500"}
            f["default"] = "blue"
            f["rules"] = [
                {"segments": ["beta"], "serve": "green"},
                {"split": {"blue": 34, "green": 33, "orange": 33}},
            ]
        elif kind == 2:
            f["rules"] = [{"rollout": {"stages": [1, 5, 25, 100], "stage": 1}}]
        elif kind == 3:
            f["rules"] = [
                {
                    "conditions": [
                        {"attribute": "country", "op": "in", "value": ["DE", "FR", "NL"]}
                    ],
                    "serve": "on",
                }
            ]
        elif kind == 4:
            f["killed"] = True
            f["rules"] = [{"split": {"on": 10, "off": 90}}]
        flags[key] = f
    return {
        "version": 1,
        "segments": {
            "staff": {"conditions": [{"attribute": "email", "op": "ends_with", "value": "@x.com"}]},
            "beta": {"conditions": [{"attribute": "beta", "op": "equals", "value": True}]},
            "qa": {"keys": ["qa-1", "qa-2"]},
        },
        "flags": flags,
    }


def outcomes(n: int) -> OutcomeSnapshot:
    """Figures for the first 200 flags (the book tracks at most 256)."""
    buckets = tuple([0] * 60 + [50, 200, 400, 200, 50] + [0] * 96)
    body = {
        f"flag-{i:04d}": {
            "on": VariantStats(900, 9, 9, 0.0, 0.0, buckets),
            "off": VariantStats(900, 2, 2, 0.0, 0.0, buckets),
        }
        for i in range(min(n, 200))
    }
    return OutcomeSnapshot(body, time.time())


def get(app: Any, path: str, query: str = "") -> bytes:
    """One GET through the WSGI app; the body (asserts a 200)."""
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/_rampup",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_X_USER": "bench",
        "HTTP_COOKIE": "rampup_dash=benchsession",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    assert status[0].startswith("200"), status
    return body


def timed(fn: Any, rounds: int) -> float:
    """Median milliseconds of ``fn()`` over ``rounds`` (after one warm-up call)."""
    fn()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--flags", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="3 rounds (a smoke run)")
    args = p.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    data = flag_document(args.flags)
    snap = load(data)
    book = outcomes(args.flags)
    dash = Dashboard(snap, authorize=lambda r: r.headers.get("x-user"), outcomes=lambda: book)
    page = get(dash.wsgi, "/")
    assert page.count(b'class="key" href=') == args.flags, "the page must list every flag"
    rows = {
        "baseline: json.dumps of the flags": lambda: json.dumps(data),
        f"list page, {args.flags:,} flags": lambda: get(dash.wsgi, "/"),
        "list page, searched (q=flag-01)": lambda: get(dash.wsgi, "/", "q=flag-01"),
        "one flag's page": lambda: get(dash.wsgi, "/flag/flag-0001"),
    }
    results = {name: timed(fn, rounds) for name, fn in rows.items()}
    base = results["baseline: json.dumps of the flags"]
    print(f"bench_dashboard: {args.flags:,} flags, {rounds} rounds, median ms (shared machine)")
    print(f"{'item':<40} {'ms':>9} {'x baseline':>11}")
    for name, ms in results.items():
        print(f"{name:<40} {ms:>9.2f} {ms / base:>11.1f}")
    full = results[f"list page, {args.flags:,} flags"]
    verdict = "meets" if full < TARGET_MS else "MISSES"
    print(f"target: list page of 1,000 flags < {TARGET_MS:.0f} ms: {full:.1f} ms ({verdict})")
    print(f"page size: {len(page) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
