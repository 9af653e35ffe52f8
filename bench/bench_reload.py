#!/usr/bin/env python
"""What a one-flag change costs in a 10,000-flag document (issue 14, item 5).

1. In process: one reload after a one-flag kill, full (``rampup.load``, every flag parsed,
   validated and compiled again, as before) against incremental (``previous=`` the served
   snapshot, and for TOML the FileSource's ``TomlCache``, which parses only the changed
   flag's tables), for a TOML file, a JSON file and the store's path (JSON from Redis ->
   ``load(mapping)``), median of ``--runs``. Parsing is shown apart: JSON is parsed whole.
2. End to end: ``gunicorn --preload -w 4`` serving ``bench/reload_app.py`` over a FileSource
   (TOML and JSON, the file replaced by a rename; ``settle=0``, interval 0.5 s) and over the
   Redis store (a real ``redis-server`` on 127.0.0.1, ``rampup.store.Store.set_killed``,
   whose time counts, printed apart): time from the change until all 4 workers serve the
   kill, per ``--kills`` kills (kill and unkill in turn), with the full-reload baseline
   (``RELOAD_FULL=1``) in the same run.

Goal: a one-flag change reaches every worker in under 1 s, for the file and the store alike.

Usage: ``.venv/bin/python bench/bench_reload.py [--flags 10000] [--runs 5] [--kills 3]
[--quick]``. On a shared 2-core machine the figures are not figures of record.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's redis-server helper

import _harness as h  # noqa: E402
from bench_fleet import wait_for  # noqa: E402

import rampup  # noqa: E402
from rampup._toml import TomlCache  # noqa: E402
from rampup.config import load_bytes  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

WORKERS = 4
GOAL_S = 1.0


def median_of(fn: Callable[[], Any], runs: int, before: Callable[[], Any] | None = None) -> float:
    """Median seconds of ``fn``; ``before`` runs untimed ahead of each call."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_process(data: dict[str, Any], probe: str, runs: int) -> list[tuple[str, float, float]]:
    """(path, full s, incremental s) for a one-flag kill."""
    killed = copy.deepcopy(data)
    killed["flags"][probe]["killed"] = True
    out = []
    toml_a, toml_b = h.to_toml(data).encode(), h.to_toml(killed).encode()
    as_json = json.dumps(data, default=lambda d: d.isoformat())
    json_a, json_b = as_json.encode(), json.dumps(killed, default=lambda d: d.isoformat()).encode()
    for name, a, b in (("TOML file", toml_a, toml_b), ("JSON file", json_a, json_b)):
        suffix = "x.toml" if name.startswith("TOML") else "x.json"
        # as a FileSource does: the cache saw the file before the kill (loaded again, untimed,
        # before each timed reload, so that every one parses the killed flag's tables)
        cache = TomlCache()
        old = load_bytes(a, suffix, toml_cache=cache)
        full = median_of(lambda b=b, s=suffix: load_bytes(b, s), runs)
        incr = median_of(
            lambda b=b, s=suffix, o=old, c=cache: load_bytes(b, s, previous=o, toml_cache=c),
            runs,
            before=lambda a=a, s=suffix, c=cache: load_bytes(a, s, toml_cache=c),
        )
        out.append((name, full, incr))
    store_a, store_b = json.loads(json_a), json.loads(json_b)  # what RedisSource gets
    old = rampup.load(store_a)
    out.append(
        (
            "store (JSON from Redis)",
            median_of(lambda: rampup.load(json.loads(json.dumps(store_b))), runs),
            median_of(lambda: rampup.load(json.loads(json.dumps(store_b)), previous=old), runs),
        )
    )
    out.append(
        ("  parse only: tomllib", median_of(lambda: tomllib.loads(toml_b.decode()), runs), 0)
    )
    cache = TomlCache()
    out.append(
        (
            "  parse only: TomlCache, one flag changed",
            median_of(
                lambda: cache.loads(toml_b.decode()),
                runs,
                before=lambda: cache.loads(toml_a.decode()),
            ),
            0,
        )
    )
    out.append(("  parse only: json", median_of(lambda: json.loads(json_b), runs), 0))
    return out


class Fleet:
    """``gunicorn --preload -w 4`` serving reload_app; the workers report on a file."""

    def __init__(self, flags: str, probe: str, tmp: str, full: bool) -> None:
        self.report = Path(tmp) / f"report-{time.monotonic_ns()}.txt"
        self.report.touch()
        self.port = _free_port()
        env = {
            **os.environ,
            "RELOAD_FLAGS": flags,
            "RELOAD_PROBE": probe,
            "RELOAD_REPORT": str(self.report),
            "RELOAD_FULL": "1" if full else "0",
            "PYTHONPATH": str(HERE.parent / "src"),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "-w",
                str(WORKERS),
                "-b",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(HERE),
                "--timeout",
                "120",
                "--log-level",
                "warning",
                "reload_app:app",
            ],
            env=env,
        )

    def warm(self) -> bool:
        """Requests until every worker has served one (and started its reporter)."""
        deadline = time.monotonic() + 120
        pids: set[str] = set()
        while len(pids) < WORKERS and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            got: list[str] = []
            threads = [threading.Thread(target=self._get, args=(got,)) for _ in range(WORKERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            pids.update(got)
            if not got:
                time.sleep(0.2)
        return len(pids) == WORKERS

    def _get(self, out: list[str]) -> None:
        try:
            url = f"http://127.0.0.1:{self.port}/"
            with urllib.request.urlopen(url, timeout=30) as r:
                out.append(r.read().decode().split()[0])
        except OSError:
            pass

    def states(self) -> dict[str, tuple[int, float]]:
        """pid -> (killed?, monotonic time of its last change)."""
        out: dict[str, tuple[int, float]] = {}
        for line in self.report.read_text().splitlines():
            pid, state, at = line.split()
            out[pid] = (int(state), float(at))
        return out

    def all_serve(self, state: int) -> bool:
        states = self.states()
        return len(states) == WORKERS and all(s == state for s, _ in states.values())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _free_port() -> int:
    from redis_server import free_port

    return free_port()


def end_to_end(
    kind: str, full: bool, kills: int, data: dict[str, Any], probe: str, tmp: str, url: str
) -> list[float]:
    """Seconds from each change until all workers serve it (None-free: misses are dropped)."""
    from rampup.store import Store

    path = Path(tmp) / ("flags.json" if kind == "JSON file" else "flags.toml")
    doc = copy.deepcopy(data)
    store = Store(url, "reload")

    def text() -> str:
        if kind == "JSON file":
            return json.dumps(doc, indent=1, default=lambda d: d.isoformat())
        return h.to_toml(doc)

    if kind != "store":
        path.write_text(text())
        flags = str(path)
    else:
        store.push(doc, reason="bench_reload")
        flags = f"{url}?namespace=reload"
    fleet = Fleet(flags, probe, tmp, full)
    out: list[float] = []
    try:
        if not fleet.warm() or wait_for(lambda: fleet.all_serve(0), 60) is None:
            print(f"   {kind} ({'full' if full else 'incremental'}): workers did not all start")
            return out
        for i in range(kills):
            state = 1 - i % 2
            t0 = time.monotonic()
            if kind != "store":
                doc["flags"][probe]["killed"] = bool(state)
                tmp_path = path.with_suffix(".tmp")
                tmp_path.write_text(text())
                t0 = time.monotonic()
                os.replace(tmp_path, path)
            else:
                store.set_killed(probe, bool(state), reason="bench_reload")
            if wait_for(lambda s=state: fleet.all_serve(s), 120) is None:
                print(f"   {kind}: change {i} not served by every worker within 120 s")
                continue
            out.append(max(at for _, at in fleet.states().values()) - t0)
            time.sleep(0.5)
    finally:
        fleet.stop()
        store.close()
    return out


def writer(url: str, data: dict[str, Any], probe: str, runs: int) -> float:
    """Median seconds of the store's ``set_killed`` (kill and unkill in turn): the writer's
    share of the store's end-to-end time (read, change, validate, canonical form, sha, write)."""
    from rampup.store import Store

    store = Store(url, "writer")
    states = iter([i % 2 == 0 for i in range(runs)])
    try:
        store.push(data, reason="bench_reload")
        return median_of(lambda: store.set_killed(probe, next(states), reason="bench"), runs)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--flags", type=int, default=10_000, help="flags in the document")
    ap.add_argument("--runs", type=int, default=5, help="in-process runs per item (default 5)")
    ap.add_argument("--kills", type=int, default=3, help="changes per fleet (default 3)")
    ap.add_argument("--quick", action="store_true", help="2 runs, 2 kills: validates, noisy")
    ap.add_argument("--no-fleet", action="store_true", help="in-process part only")
    args = ap.parse_args(argv)
    runs, kills = (2, 2) if args.quick else (args.runs, args.kills)
    data = h.synthetic_flags(args.flags)
    probe = next(k for k, f in data["flags"].items() if not f.get("killed"))
    print(f"rampup {rampup.__version__} bench_reload: {h.machine_line()}")
    print(f"{args.flags:,} flags, {len(data['segments'])} segments; a one-flag kill\n")
    print("1. in process: one reload (median of runs)")
    print("| path | full s | incremental s | full / incremental |")
    print("|---|---:|---:|---:|")
    for name, full, incr in in_process(data, probe, runs):
        if incr:
            print(f"| {name} | {full:.3f} | {incr:.3f} | {full / incr:.1f}x |")
        else:
            print(f"| {name} | {full:.3f} | | |")
    if args.no_fleet:
        return 0
    from redis_server import RedisServer

    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="rampup-reload-") as tmp:
        took = writer(server.url, data, probe, max(runs, 3))
        print(f"   the store's writer, Store.set_killed: {took:.3f} s (median of {max(runs, 3)})")
        print(f"\n2. end to end: gunicorn --preload -w {WORKERS}, change -> all workers serve it")
        print(f"| source | reload | median s | max s | changes | goal < {GOAL_S:g} s |")
        print("|---|---|---:|---:|---:|---|")
        for kind in ("TOML file", "JSON file", "store"):
            for full in (True, False):
                secs = end_to_end(kind, full, kills, data, probe, tmp, server.url)
                label = "full (before)" if full else "incremental"
                if not secs:
                    print(f"| {kind} | {label} | n/a | n/a | 0 | MISS |")
                    continue
                med = statistics.median(secs)
                verdict = "PASS" if max(secs) < GOAL_S else "MISS"
                print(
                    f"| {kind} | {label} | {med:.2f} | {max(secs):.2f} | {len(secs)} "
                    f"| {verdict if not full else ''} |"
                )
    if args.quick:
        print("(--quick: fine to validate the script, too noisy to quote)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
