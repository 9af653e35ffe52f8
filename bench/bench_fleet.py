"""Fleet benchmark (issue 14, "Measure"): a real redis-server on 127.0.0.1 and 8 forked
worker processes, each with its own RedisSource, serving requests through the WSGI middleware.

1. A kill pushed once: publish -> swapped snapshot in every worker, p50/p99 over N pushes
   (each worker reports the moment of its swap on a pipe; CLOCK_MONOTONIC is system-wide).
2. The subscription killed (``CLIENT KILL TYPE pubsub``) then a push, and a write that does
   not publish: time until every worker serves it.
3. Redis stopped for ``--outage`` seconds under a steady request load: failed requests, the
   workers' status during the outage, time to reconnect after the restart (Redis comes back
   empty: the last good flags must still be served), then time until a new push is served.
4. Request-path cost: reading ``source.snapshot`` and one request through the WSGI middleware
   with a RedisSource against a FileSource, in the same rounds.
5. A one-flag kill in a 10,000-flag document: time until all workers serve it, from the store
   and from a file.

Usage: ``.venv/bin/python bench/bench_fleet.py [--quick] [--pushes N] [--outage S] [--flags N]``.
Figures on a shared 2-core machine are not figures of record; run on a quiet machine.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import select
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's redis-server helper

import rampup  # noqa: E402
from rampup.redis_source import RedisSource  # noqa: E402
from rampup.sources import FileSource  # noqa: E402
from rampup.store import Store  # noqa: E402
from rampup.wsgi import RampupMiddleware  # noqa: E402
from redis_server import RedisServer  # noqa: E402

WORKERS = 8
NS = "bench"
DOC: dict[str, Any] = {
    "version": 1,
    "flags": {
        "new-checkout": {"default": "off", "rules": [{"split": {"on": 50, "off": 50}}]},
        "dark-mode": {"default": "on"},
    },
}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "HTTP_X_USER_ID": "user-1",
    }


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    on = rampup.flags.enabled("new-checkout")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"1" if on else b"0"]


def _noop_start(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
    return None


class TimedSource(RedisSource):
    """Reports every swap (sha, CLOCK_MONOTONIC) on a pipe: the benchmark's probe."""

    pipe: int = -1

    def _swap(self, doc: Any, snapshot: Any) -> None:
        super()._swap(doc, snapshot)
        if self.pipe >= 0:
            os.write(self.pipe, f"{doc.sha} {time.monotonic()!r}\n".encode())


def worker(url: str, pipe: int, state_path: str, stop_path: str) -> None:
    """One forked worker: a RedisSource, ~1,000 requests/s through the middleware, its state
    written to ``state_path`` every 50 ms, until ``stop_path`` exists."""
    source = TimedSource(url, NS, interval=1.0)
    source.pipe = pipe
    wrapped = RampupMiddleware(app, flags=source, user_header="X-User-Id")
    served = failed = 0
    statuses: set[str] = set()
    next_state = 0.0
    while not os.path.exists(stop_path):
        try:
            body = b"".join(wrapped(environ(), _noop_start))
            served += 1
            if body not in (b"0", b"1"):
                failed += 1
        except Exception:
            failed += 1
        statuses.add(source.status)
        now = time.monotonic()
        if now >= next_state:
            state = {
                "pid": os.getpid(),
                "served": served,
                "failed": failed,
                "status": source.status,
                "statuses": sorted(statuses),
                "last_error": source.last_error,
                "sha": source.sha,
                "killed": source.snapshot.flags["new-checkout"].killed,
            }
            tmp = state_path + ".tmp"
            Path(tmp).write_text(json.dumps(state))
            os.replace(tmp, state_path)
            next_state = now + 0.05
        time.sleep(0.001)


class Fleet:
    def __init__(self, url: str, tmp: str) -> None:
        self.tmp = tmp
        self.stop_path = os.path.join(tmp, "stop")
        self.read_fd, write_fd = os.pipe()
        self.pids = []
        self.states = [os.path.join(tmp, f"w{i}.json") for i in range(WORKERS)]
        for i in range(WORKERS):
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(self.read_fd)
                code = 0
                try:
                    worker(url, write_fd, self.states[i], self.stop_path)
                except BaseException:
                    code = 1
                os._exit(code)
            self.pids.append(pid)
        os.close(write_fd)
        self.buf = b""

    def state(self) -> list[dict[str, Any]]:
        out = []
        for p in self.states:
            try:
                out.append(json.loads(Path(p).read_text()))
            except (OSError, ValueError):
                out.append({})
        return out

    def swaps_of(self, sha: str, timeout: float) -> list[float]:
        """Swap times reported for ``sha``, until every worker reported one (or timeout)."""
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        got: list[float] = []
        while len(got) < WORKERS and time.monotonic() < deadline:
            ready, _, _ = select.select([self.read_fd], [], [], 0.05)
            if ready:
                self.buf += os.read(self.read_fd, 65536)
                *lines, self.buf = self.buf.split(b"\n")
                for line in lines:
                    s, t = line.decode().split()
                    if s == sha:
                        got.append(float(t))
        del seen
        return got

    def drain(self) -> None:
        while select.select([self.read_fd], [], [], 0)[0]:
            if not os.read(self.read_fd, 65536):
                return

    def stop(self) -> None:
        Path(self.stop_path).touch()
        for pid in self.pids:
            os.waitpid(pid, 0)


def big_worker(make_source: Any, probe: str, pipe: int, stop_path: str) -> None:
    """A forked worker that serves a big document: reports on the pipe when ``probe`` becomes
    killed in the snapshot it serves (checked every millisecond, as a request would)."""
    source = make_source()
    seen = None
    while not os.path.exists(stop_path):
        flag = source.snapshot.flags.get(probe)
        killed = bool(flag is not None and flag.killed)
        if killed != seen:
            seen = killed
            os.write(pipe, f"{probe}:{int(killed)} {time.monotonic()!r}\n".encode())
        time.sleep(0.001)


def bench_big(url: str, n_flags: int, tmp: str) -> dict[str, float | None]:
    """A one-flag kill in an ``n_flags`` document: time until all workers serve it, from the
    store and from a file rewritten in place (write-then-rename)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from _harness import synthetic_flags, to_toml

    data = synthetic_flags(n_flags)
    probe = next(k for k, f in data["flags"].items() if not f.get("killed"))
    store = Store(url, "big")
    store.push(data, reason="bench: big")
    path = Path(tmp) / "big.toml"
    path.write_text(to_toml(data))
    out: dict[str, float | None] = {}
    for kind in ("store", "file"):
        stop_path = os.path.join(tmp, f"stop-{kind}")
        read_fd, write_fd = os.pipe()
        pids = []
        for _ in range(WORKERS):
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)

                def make(kind: str = kind) -> Any:
                    if kind == "store":
                        return RedisSource(url, "big", interval=1.0)
                    return FileSource(path, interval=0.5)

                code = 0
                try:
                    big_worker(make, probe, write_fd, stop_path)
                except BaseException:
                    code = 1
                os._exit(code)
            pids.append(pid)
        os.close(write_fd)
        buf = b""

        def collect(state: str, timeout: float, read_fd: int = read_fd) -> list[float]:
            nonlocal buf
            got: list[float] = []
            deadline = time.monotonic() + timeout
            while len(got) < WORKERS and time.monotonic() < deadline:
                if select.select([read_fd], [], [], 0.05)[0]:
                    buf += os.read(read_fd, 65536)
                    *lines, buf = buf.split(b"\n")
                    got += [float(ln.split()[1]) for ln in lines if ln.split()[0].decode() == state]
            return got

        if len(collect(f"{probe}:0", 120)) < WORKERS:
            out[kind] = None
        else:
            t0 = time.monotonic()
            if kind == "store":
                store.set_killed(probe, True, reason="bench: big kill")
            else:
                data["flags"][probe]["killed"] = True
                tmp_path = path.with_suffix(".tmp")
                tmp_path.write_text(to_toml(data))
                os.replace(tmp_path, path)
            times = collect(f"{probe}:1", 120)
            out[kind] = (max(times) - t0) if len(times) == WORKERS else None
        Path(stop_path).touch()
        for pid in pids:
            os.waitpid(pid, 0)
        os.close(read_fd)
    store.close()
    return out


def wait_for(condition: Any, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if condition():
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


def bench_propagation(store: Store, fleet: Fleet, pushes: int) -> dict[str, Any]:
    alls, each = [], []
    for i in range(pushes):
        fleet.drain()
        t0 = time.monotonic()
        written = store.set_killed("new-checkout", i % 2 == 0, reason="bench")
        times = fleet.swaps_of(written.sha, timeout=10)
        if len(times) < WORKERS:
            print(f"  push {i}: only {len(times)} of {WORKERS} workers swapped within 10 s")
            continue
        alls.append((max(times) - t0) * 1000)
        each.extend((t - t0) * 1000 for t in times)
        time.sleep(0.05)
    return {"all": alls, "each": each}


def bench_deaf(store: Store, fleet: Fleet) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    fleet.drain()
    store.client.client_kill_filter(_type="pubsub")
    t0 = time.monotonic()
    written = store.set_killed("new-checkout", True, reason="bench: pubsub killed")
    times = fleet.swaps_of(written.sha, timeout=10)
    out["pubsub killed"] = (max(times) - t0) if len(times) == WORKERS else None
    time.sleep(1.0)  # let the subscriptions come back
    fleet.drain()
    data = json.loads(json.dumps(store.get().data))  # type: ignore[union-attr]
    data["flags"]["new-checkout"].pop("killed", None)
    t0 = time.monotonic()
    written = store.push(data, reason="bench: unpublished", publish=False)
    times = fleet.swaps_of(written.sha, timeout=10)
    out["unpublished write"] = (max(times) - t0) if len(times) == WORKERS else None
    return out


def bench_outage(server: RedisServer, store: Store, fleet: Fleet, outage: float) -> dict[str, Any]:
    store.set_killed("new-checkout", True, reason="bench: before the outage")
    wait_for(lambda: all(s.get("killed") for s in fleet.state()), 10)
    before = fleet.state()
    server.stop()
    time.sleep(outage)
    during = fleet.state()
    server.start()  # back, empty
    t0 = time.monotonic()
    reconnect = wait_for(
        lambda: all("unreachable" not in (s.get("last_error") or "") for s in fleet.state()), 30
    )
    after = fleet.state()
    fresh = Store(server.url, NS)
    written = fresh.push(DOC, reason="bench: after the restart")
    served = wait_for(lambda: all(s.get("sha") == written.sha for s in fleet.state()), 30)
    fresh.close()
    return {
        "failed": sum(s.get("failed", 0) for s in after) - sum(s.get("failed", 0) for s in before),
        "served": sum(s.get("served", 0) for s in after) - sum(s.get("served", 0) for s in before),
        "status during": sorted({s.get("status") for s in during}),
        "last good kept": all(s.get("killed") for s in after),
        "reconnect": reconnect,
        "push served": served,
        "since restart": time.monotonic() - t0,
    }


def bench_request_path(url: str, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.json"
        path.write_text(json.dumps(DOC))
        file_source = FileSource(path, watch=False)
        redis_source = RedisSource(url, NS, interval=1.0)
        items = {
            "snapshot read, FileSource": lambda: file_source.snapshot,
            "snapshot read, RedisSource": lambda: redis_source.snapshot,
        }
        for name, src in (("FileSource", file_source), ("RedisSource", redis_source)):
            mw = RampupMiddleware(app, flags=src, user_header="X-User-Id")
            env = environ()

            def request(mw: Any = mw, env: dict[str, Any] = env) -> None:
                env["wsgi.input"].seek(0)
                b"".join(mw(dict(env), _noop_start))

            items[f"request, {name}"] = request
        results: dict[str, list[float]] = {k: [] for k in items}
        for r in range(rounds):
            order = list(items)
            order = order[r % len(order) :] + order[: r % len(order)]
            for name in order:
                n = 20000 if "snapshot" in name else 2000
                results[name].append(timeit.timeit(items[name], number=n) / n * 1e6)
        redis_source.close()
        return {k: statistics.median(v) for k, v in results.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run: shows the script works")
    ap.add_argument("--pushes", type=int, help="kills pushed (default 50; quick 40)")
    ap.add_argument("--outage", type=float, help="seconds Redis is down (default 10; quick 2)")
    ap.add_argument(
        "--flags", type=int, help="flags in the big document (default 10,000; quick 2,000)"
    )
    args = ap.parse_args()
    # the workers' transition lines (an outage is part of the run) would drown the table
    logging.getLogger("rampup").addHandler(logging.NullHandler())
    pushes = args.pushes or (40 if args.quick else 50)
    outage = args.outage or (2.0 if args.quick else 10.0)
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = ""
    print(
        f"bench_fleet: {WORKERS} forked workers, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, {load}{' (quick)' if args.quick else ''}"
    )
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        store = Store(server.url, NS)
        store.push(DOC, reason="bench")
        fleet = Fleet(server.url, tmp)
        try:
            if wait_for(lambda: len(store.live()) >= WORKERS, 30) is None:
                print("workers did not all start")
                return 1
            prop = bench_propagation(store, fleet, pushes)
            deaf = bench_deaf(store, fleet)
            out = bench_outage(server, store, fleet, outage)
        finally:
            fleet.stop()
        cost = bench_request_path(server.url, 3 if args.quick else 9)
        big = bench_big(server.url, args.flags or (2000 if args.quick else 10_000), tmp)
        store.close()

    print()
    allv = prop["all"]
    print(f"1. kill pushed -> swapped in all {WORKERS} workers, {len(allv)} pushes")
    if allv:
        p50, p99 = percentile(allv, 50), percentile(allv, 99)
        print(
            f"   all workers: p50 {p50:.1f} ms  p99 {p99:.1f} ms   "
            f"goal p99 < 100 ms: {'PASS' if p99 < 100 else 'MISS'}"
        )
        print(
            f"   each worker: p50 {percentile(prop['each'], 50):.1f} ms  "
            f"p99 {percentile(prop['each'], 99):.1f} ms"
        )
    print("2. silent failures: time until every worker serves the write (goal < 2 s)")
    for name, secs in deaf.items():
        verdict = "MISS (not all)" if secs is None else ("PASS" if secs < 2 else "MISS")
        shown = "n/a" if secs is None else f"{secs:.2f} s"
        print(f"   {name:<20} {shown:>8}   {verdict}")
    print(f"3. Redis stopped {outage:g} s under load, restarted empty")
    print(
        f"   requests served {out['served']}, failed {out['failed']} (goal 0): "
        f"{'PASS' if out['failed'] == 0 else 'MISS'}"
    )
    print(f"   status during the outage: {', '.join(out['status during'])}")
    rec = out["reconnect"]
    print(
        f"   reconnected after restart: {'n/a' if rec is None else f'{rec:.2f} s'} "
        f"(goal < 2 s: {'PASS' if rec is not None and rec < 2 else 'MISS'})"
    )
    print(f"   last good kept after an empty restart: {'yes' if out['last good kept'] else 'NO'}")
    ps = out["push served"]
    print(
        f"   a push after the restart served everywhere in: "
        f"{'n/a' if ps is None else f'{ps:.2f} s'}"
    )
    print("4. request-path cost (median of rounds, same rounds)")
    for name, us in cost.items():
        print(f"   {name:<28} {us:8.3f} µs")
    ratio_read = cost["snapshot read, RedisSource"] / cost["snapshot read, FileSource"]
    ratio_req = cost["request, RedisSource"] / cost["request, FileSource"]
    print(
        f"   ratio Redis/File: snapshot read {ratio_read:.2f}, request {ratio_req:.2f} "
        "(goal: the same, no Redis call per request)"
    )
    n = args.flags or (2000 if args.quick else 10_000)
    print(
        f"5. a one-flag kill in a {n:,}-flag document: until all {WORKERS} workers serve it "
        "(goal < 1 s; bench/bench_reload.py takes this one apart)"
    )
    for kind, secs in big.items():
        shown = "n/a (not all)" if secs is None else f"{secs:.2f} s"
        verdict = "MISS" if secs is None or secs >= 1 else "PASS"
        print(f"   {kind:<6} {shown:>14}   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
