#!/usr/bin/env python
"""Requests per second through a real server: uvicorn + wrk, Starlette with and without rampup.

One uvicorn process per variant (``uvicorn bench_http:create_app --factory``, the variant in
an environment variable), each on 127.0.0.1 with a free port, 1 worker, ``--log-level
warning --no-access-log``, with whatever HTTP parser and event loop uvicorn picks as installed
(h11 + asyncio unless httptools / uvloop are there; the header says which):

  a  bare Starlette hello world
  b  the same with ``app.add_middleware(rampup.asgi.RampupMiddleware, flags=FLAGS,
     user_header="X-User-Id")``; the view reads 0 flags
  c  the same; the view reads the 5 flags of bench_middleware.py (a 10 % split, a segment rule
     that falls through to its split, three booleans), subject from a valid ``rampup_id`` cookie

Flags, flag reads and request headers are those of bench_middleware.py (an in-memory mapping:
a StaticSource, no watcher thread). Every variant gets the same request headers (``Cookie:
theme=dark; rampup_id=<32 hex>; _ga=...``, ``X-User-Email``, ...) sent by ``wrk -H``.

Before timing, each server must answer ``GET /`` with 200 and ``Hello, world!`` and no
``Set-Cookie``, and ``GET /check`` (a route every variant has, after ``/``) must show what
rampup decided: no flags for a, no decisions for b, the 5 expected decisions for the cookie's
id for c. Then one warm-up ``wrk`` run per server, then ``--rounds`` interleaved rounds of
``wrk -t1 -c<connections> -d<duration>s --latency`` against every variant in rotated order.
Reported per variant: median req/s, median same-round ratio vs a, wrk's latency p50/p99
(medians over rounds) and the server process's CPU time per request (from /proc).

wrk and uvicorn share the machine's cores (2 here): absolute req/s belong to this machine;
the same-round ratios are the numbers to quote. Every server is started and stopped by this
script (SIGTERM, bounded wait, SIGKILL); every wait is bounded; all traffic goes to 127.0.0.1.

Usage: python bench/bench_http.py [--rounds 3] [--duration 5] [--connections 32] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _harness as h  # noqa: E402
import bench_middleware as mw  # noqa: E402

VARIANT_ENV = "RAMPUP_BENCH_HTTP_VARIANT"
VARIANTS = ("a", "b", "c")
LABELS = {
    "a": "bare Starlette",
    "b": "rampup, 0 flags read",
    "c": "rampup, 5 flags, cookie id",
}
# wrk sets Host itself; the rest are bench_middleware's "cookie" request (valid rampup_id)
HEADERS = [(k, v) for k, v in mw.request_headers("cookie") if k.lower() != "host"]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
WARMUP_S = 1


# ---------------------------------------------------------------------------------------------
# The app, built in the uvicorn process


def create_app() -> Any:
    """uvicorn factory: the Starlette app of the variant named in $RAMPUP_BENCH_HTTP_VARIANT."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from rampup.asgi import RampupMiddleware

    variant = os.environ[VARIANT_ENV]
    if variant not in VARIANTS:
        raise SystemExit(f"{VARIANT_ENV}={variant!r}: expected one of {VARIANTS}")
    text = mw.BODY.decode()
    reads = variant == "c"

    async def hello(request: Any) -> Any:
        if reads:
            mw.read_five()
        return PlainTextResponse(text)

    async def check(request: Any) -> Any:
        # Not timed: shows what rampup decided for the same request, so the numbers are known
        # to come from the intended path. After "/" in the routes, so "/" is matched first.
        if reads:
            mw.read_five()
        f = request.scope.get("rampup.flags")
        if f is None:
            return JSONResponse({"flags": None})
        return JSONResponse(
            {
                "flags": type(f).__name__,
                "subject": f.subject.key,
                "minted": f.minted,
                "decisions": {k: [d.value, str(d.reason)] for k, d in f.decisions.items()},
            }
        )

    app = Starlette(routes=[Route("/", hello), Route("/check", check)])
    if variant != "a":
        app.add_middleware(RampupMiddleware, flags=mw.FLAGS, **mw.OPTIONS)
    return app


# ---------------------------------------------------------------------------------------------
# Servers


class BenchError(RuntimeError):
    """A server did not start or did not answer as expected: its numbers would mean nothing."""


@dataclass
class Server:
    variant: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: str

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        """utime + stime of the server process (Linux /proc), None elsewhere."""
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(HEADERS))
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def start_server(variant: str, tmp: str) -> Server:
    """Start uvicorn for ``variant`` and wait (bounded) until it answers; up to 3 ports."""
    for attempt in range(3):
        port = free_port()  # closed again before uvicorn binds it: a rare race, hence retries
        log_path = os.path.join(tmp, f"uvicorn-{variant}-{attempt}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench_http:create_app",
                    "--factory",
                    "--app-dir",
                    HERE,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env={**os.environ, VARIANT_ENV: variant},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this script only; it stops the server
            )
        server = Server(variant, port, proc, log_path)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    get(port, "/", timeout=1.0)
                    return server
                except OSError:
                    time.sleep(0.1)
        except BaseException:  # e.g. Ctrl-C while waiting: the caller does not know it yet
            stop_server(server)
            raise
        stop_server(server)
        if "address already in use" not in server.log_tail().lower():
            raise BenchError(f"uvicorn {variant} did not answer:\n{server.log_tail()}")
    raise BenchError(f"uvicorn {variant}: no free port after 3 attempts")


def stop_server(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _require(ok: Any, where: str, *detail: Any) -> None:
    if not ok:
        raise BenchError(where, *detail)


def check_server(server: Server) -> None:
    """``/`` answers 200 Hello, world! with no cookie set; ``/check`` shows rampup decided as
    it should for this variant (bench_middleware's expectations)."""
    v = server.variant
    _require(server.proc.poll() is None, v, "server exited", server.log_tail())
    status, headers, body = get(server.port, "/")
    _require(status == 200, v, status, body[:200])
    _require(body == mw.BODY, v, body[:200])
    cookies = [val for k, val in headers if k.lower() == "set-cookie"]
    _require(not cookies, v, "a cookie was set for a known subject", cookies)
    status, _, body = get(server.port, "/check")
    _require(status == 200, v, "/check", status, body[:200])
    info = json.loads(body)
    if v == "a":
        _require(info["flags"] is None, v, "bare app has rampup.flags", info)
        return
    _require(info["flags"] is not None, v, "no rampup.flags in scope", info)
    _require(info["subject"] == mw.ANON_ID, v, "subject is not the cookie's id", info)
    _require(info["minted"] is None, v, "an id was minted", info)
    decisions = info["decisions"]
    if v == "b":
        _require(not decisions, v, "flags were read", decisions)
        return
    _require(list(decisions) == list(mw.READ), v, list(decisions))
    for key, want in mw.EXPECTED_BOOLS.items():
        _require(decisions[key][0] is want, v, key, decisions[key])


# ---------------------------------------------------------------------------------------------
# wrk


@dataclass
class Sample:
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_us_per_req: float | None
    cpu_pct: float | None
    errors: list[str] = field(default_factory=list)


_LAT_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def run_wrk(server: Server, duration: int, connections: int) -> Sample:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in HEADERS:
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://127.0.0.1:{server.port}/")
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=duration + 30)
    cpu1, wall = server.cpu_seconds(), time.monotonic() - t0
    out = proc.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if proc.returncode != 0 or not m or not total:
        raise BenchError(f"wrk failed (rc {proc.returncode}):\n{out}\n{proc.stderr}")
    lat: dict[str, float | None] = {}
    for pct in ("50", "99"):
        mm = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        lat[pct] = float(mm.group(1)) * _LAT_UNIT[mm.group(2)] if mm else None
    errors = [ln.strip() for ln in out.splitlines() if "Non-2xx" in ln or "Socket errors" in ln]
    n = int(total.group(1))
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return Sample(
        rps=float(m.group(1)),
        p50_ms=lat["50"],
        p99_ms=lat["99"],
        cpu_us_per_req=cpu / n * 1e6 if cpu is not None and n else None,
        cpu_pct=cpu / wall * 100 if cpu is not None else None,
        errors=errors,
    )


# ---------------------------------------------------------------------------------------------
# Report


def _median(values: list[float | None]) -> float | None:
    vals = [x for x in values if x is not None]
    return statistics.median(vals) if vals else None


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def report(samples: dict[str, list[Sample]]) -> None:
    base = [s.rps for s in samples["a"]]
    print(
        "\n| variant | req/s (median) | ratio vs a | min-max ratio | p50 ms | p99 ms "
        "| server CPU µs/req | server CPU % | wrk errors |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---|")
    for v, ss in samples.items():
        ratios = [s.rps / b for s, b in zip(ss, base, strict=True)]
        errors = sorted({e for s in ss for e in s.errors})
        print(
            f"| {v}: {LABELS[v]} | {statistics.median(s.rps for s in ss):,.0f} | "
            f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} | "
            f"{_fmt(_median([s.p50_ms for s in ss]), '.2f')} | "
            f"{_fmt(_median([s.p99_ms for s in ss]), '.2f')} | "
            f"{_fmt(_median([s.cpu_us_per_req for s in ss]), '.0f')} | "
            f"{_fmt(_median([s.cpu_pct for s in ss]), '.0f')} | "
            f"{'; '.join(errors) or 'none'} |"
        )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def header(args: argparse.Namespace) -> None:
    import rampup

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    wrk_v = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True, timeout=10)
    wrk_line = (wrk_v.stdout or wrk_v.stderr).splitlines()
    print(f"rampup {rampup.__version__} bench_http: {h.machine_line()}")
    print(
        f"uvicorn {_version('uvicorn')} ({parser} + {loop}, 1 worker), "
        f"starlette {_version('starlette')}, "
        f"{wrk_line[0].split(' Copyright')[0] if wrk_line else 'wrk'}"
    )
    print(
        f"{args.rounds} interleaved round(s) x {args.duration} s per variant, "
        f"wrk -t1 -c{args.connections} --latency, all on 127.0.0.1"
    )
    print(
        f"note: wrk and the uvicorn server share this machine's {os.cpu_count()} cores; "
        "absolute req/s belong to this machine, quote the same-round ratios"
    )


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s: validates, noisy")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 30 or args.connections < 1:
        ap.error("expected 1 <= --rounds <= 20, 1 <= --duration <= 30, --connections >= 1")
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk): nothing measured", file=sys.stderr)
        return 2

    header(args)
    servers: dict[str, Server] = {}
    samples: dict[str, list[Sample]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="rampup-bench-http-") as tmp:
        try:
            for v in VARIANTS:
                servers[v] = start_server(v, tmp)
                check_server(servers[v])
                h.log(f"uvicorn {v} pid={servers[v].proc.pid} port={servers[v].port}: checked")
            for v in VARIANTS:
                run_wrk(servers[v], WARMUP_S, args.connections)
            for r in range(args.rounds):
                k = r % len(VARIANTS)
                for v in VARIANTS[k:] + VARIANTS[:k]:
                    samples[v].append(run_wrk(servers[v], args.duration, args.connections))
                h.log(
                    f"  round {r + 1}/{args.rounds}: "
                    + ", ".join(f"{v}={samples[v][-1].rps:,.0f} req/s" for v in VARIANTS)
                )
            for server in servers.values():
                check_server(server)  # still up and still deciding the same way
        finally:
            for server in servers.values():
                try:
                    stop_server(server)
                    h.log(f"stopped uvicorn {server.variant} pid={server.proc.pid}")
                except subprocess.TimeoutExpired:  # go on stopping the others
                    h.log(f"uvicorn {server.variant} pid={server.proc.pid} did not exit")
    print(
        "   responses checked before and after timing (200, body, no Set-Cookie; "
        "b/c: subject = cookie id, c: the 5 expected decisions)"
    )
    report(samples)
    try:
        load = "load average now {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        load = "load average n/a"
    print(f"\n{load}")
    if args.quick:
        print("(--quick: 1 short round; fine to validate the script, too noisy to quote)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
