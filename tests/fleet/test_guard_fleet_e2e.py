"""The fleet guard end to end: a real redis-server, gunicorn ``--preload -w 4`` forked
workers, traffic over 127.0.0.1. A rollout whose ``on`` fails 10 % of requests ends killed
fleet-wide with the guard's reason; a healthy twin advances."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rampup.guard_fleet import holder, load_states
from rampup.store import Store
from redis_server import RedisServer, free_port

from .helpers import HANG_GUARD, wait_until

HERE = Path(__file__).parent

pytestmark = pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")

#: bounds on the traffic the test drives (not timing thresholds: the test stops when done)
MAX_REQUESTS = 6000


def rollout(**extra: Any) -> dict[str, Any]:
    return {
        "rules": [
            {"rollout": {"stages": [50, 100], "hold": 1, "guard": {"min_requests": 50}, **extra}}
        ]
    }


def document() -> dict[str, Any]:
    return {"flags": {"bad-checkout": rollout(), "good-checkout": rollout()}}


def get(port: int, path: str, user: int) -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-User": str(user)})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    pid, variant = body.split()
    return status, pid, variant


def done(store: Store) -> bool:
    live = store.get()
    assert live is not None
    flags = live.data["flags"]
    return bool(flags["bad-checkout"].get("killed")) and (
        flags["good-checkout"]["rules"][0]["rollout"].get("stage", 0) == 1
    )


def test_a_bad_rollout_is_killed_fleet_wide_and_a_healthy_twin_advances(
    redis_server: RedisServer,
) -> None:
    """Four forked workers flush their books; one elected guard kills the rollout whose `on`
    fails 10 % of requests (with its reason, through the store, so every worker serves `off`)
    and advances the equally flaky twin to its next stage."""
    store = Store(redis_server.url, "shop")
    store.push(document(), reason="start")
    port = free_port()
    env = {**os.environ, "GUARD_REDIS_URL": redis_server.url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "-w",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(HERE),
            "--log-level",
            "warning",
            "guard_app:app",
        ],
        env=env,
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, "gunicorn exited"
            try:
                get(port, "/good", 1)
            except OSError:
                return False
            return True

        wait_until(up)
        sent = [0]
        stop = threading.Event()
        deadline = time.monotonic() + HANG_GUARD

        def drive(offset: int) -> None:
            user = offset
            while not stop.is_set() and sent[0] < MAX_REQUESTS and time.monotonic() < deadline:
                user += 4
                get(port, "/bad" if user % 8 < 4 else "/good", user)
                sent[0] += 1

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: done(store) or not any(t.is_alive() for t in threads))
        finally:
            stop.set()
            for t in threads:
                t.join()
        live = store.get()
        assert live is not None
        assert done(store), (sent[0], live.data, [(d.by, d.reason) for d in store.history()])
        kill = next(d for d in store.history() if d.reason.startswith("guard: on errors"))
        assert kill.data["flags"]["bad-checkout"].get("killed") is True
        assert kill.by.startswith("rampup guard (")
        states = load_states(store)
        assert states["bad-checkout"].verdict in ("halt", "killed")
        assert states["bad-checkout"].reason.startswith("guard: on errors")
        assert states["good-checkout"].index == 1
        evaluator = holder(store)
        assert evaluator is not None
        # fleet-wide: once every worker acknowledged the live document, all serve `off`
        wait_until(
            lambda: (
                len({a.process for a in store.live() if a.sha == store.head()[1]}) >= 4  # type: ignore[index]
            )
        )
        variants = {get(port, "/bad", user)[2] for user in range(1, 100)}
        assert variants == {"off"}
        assert evaluator.split(":")[1] in {a.process.rsplit(":", 1)[1] for a in store.acks()}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        store.close()
