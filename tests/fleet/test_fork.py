"""Fork safety with real forks: ``os.fork`` children and gunicorn ``--preload -w 4`` workers.

Each scenario has a control in which the fork guards are disabled, and there the children
keep serving the old flags: the same assertion fails without the guards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from rampup import redis_source
from rampup.redis_source import RedisSource
from rampup.store import Store
from redis_server import RedisServer, free_port

from .helpers import HANG_GUARD, doc, wait_until

HERE = Path(__file__).parent

pytestmark = pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")


def killed(source: RedisSource) -> bool:
    return source.snapshot.flags["new-checkout"].killed


def fork_child(source: RedisSource, guards: str, patience: float) -> tuple[int, int]:
    """Fork a child that reads the snapshot until the flag is killed (or ``patience`` runs
    out) and reports 1/0 on a pipe; returns (pid, read end)."""
    if guards == "pid-only":  # the hooks do not run, as under uWSGI
        redis_source._sources.discard(source)
    ready_r, ready_w = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            if guards == "none":
                source._pid = os.getpid()  # defeat the pid check: nothing restarts the watcher
            source.snapshot  # noqa: B018 - the first read in this process
            os.write(ready_w, b"r")
            deadline = time.monotonic() + patience
            while not killed(source) and time.monotonic() < deadline:
                time.sleep(0.001)  # a hookless fork is noticed within 256 reads
            os.write(result_w, b"1" if killed(source) else b"0")
        except BaseException:
            code = 1
        os._exit(code)
    os.close(ready_w)
    os.close(result_w)
    assert os.read(ready_r, 1) == b"r"
    os.close(ready_r)
    return pid, result_r


@pytest.mark.parametrize(
    ("guards", "expect_killed"), [("hook", True), ("pid-only", True), ("none", False)]
)
def test_a_forked_child_sees_a_kill_pushed_after_the_fork(
    redis_url: str, guards: str, expect_killed: bool
) -> None:
    """A child forked after the parent's watcher started still receives later kills, through
    the at-fork hook or, where hooks do not run, the pid check; with neither (control) it
    keeps the old flags."""
    store = Store(redis_url, "shop")
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        assert not killed(source)  # the parent's watcher is running
        pid, result = fork_child(source, guards, HANG_GUARD if expect_killed else 2.0)
        store.kill("new-checkout", reason="fork test")
        got = os.read(result, 1)
        os.close(result)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert got == (b"1" if expect_killed else b"0")
    finally:
        source.close()
        store.close()


class Gunicorn:
    """``gunicorn --preload -w 4`` serving fleet_app on 127.0.0.1."""

    def __init__(self, redis_url: str, mode: str) -> None:
        self.port = free_port()
        env = {**os.environ, "FLEET_REDIS_URL": redis_url, "FLEET_MODE": mode}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "-w",
                "4",
                "-b",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(HERE),
                "--log-level",
                "warning",
                "fleet_app:app",
            ],
            env=env,
        )
        wait_until(self._up)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "gunicorn exited"
        try:
            self.get(0)
        except OSError:
            return False
        return True

    def get(self, sleep: float) -> tuple[int, bool, int]:
        url = f"http://127.0.0.1:{self.port}/?sleep={sleep}"
        with urllib.request.urlopen(url, timeout=10) as r:
            pid, on, version = r.read().decode().split()
        return int(pid), on == "1", int(version)

    def every_worker(self) -> dict[int, tuple[bool, int]]:
        """Concurrent slow requests until all 4 workers have answered: pid -> (on, version)."""
        seen: dict[int, tuple[bool, int]] = {}
        deadline = time.monotonic() + HANG_GUARD
        while len(seen) < 4:
            assert time.monotonic() < deadline, f"only workers {sorted(seen)} answered"
            answers: list[tuple[int, bool, int]] = []
            threads = [
                threading.Thread(target=lambda out=answers: out.append(self.get(0.3)))
                for _ in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seen.update({pid: (on, v) for pid, on, v in answers})
        return seen

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("mode", "expect_killed"),
    [("lazy", True), ("master-read", True), ("control", False)],
)
def test_gunicorn_preload_workers_all_serve_a_kill(
    redis_server: RedisServer, mode: str, expect_killed: bool
) -> None:
    """Under gunicorn --preload -w 4 a kill reaches every worker, whether or not the master
    read the flags before forking; the control (fork guards off) keeps serving the old flags.
    In lazy mode the master, which serves nothing, runs no watcher (it never acknowledges)."""
    store = Store(redis_server.url, "shop")
    store.push(doc())
    server = Gunicorn(redis_server.url, mode)
    try:
        before = server.every_worker()
        assert all(on for on, _ in before.values())
        store.kill("new-checkout", reason="gunicorn test")
        if expect_killed:
            wait_until(
                lambda: (
                    {a.process.rsplit(":", 1)[1] for a in store.acks() if a.sha == store.head()[1]}
                    >= {str(p) for p in before}
                )
            )
        else:
            time.sleep(2.0)  # ten polls of the workers' interval: they would have seen it
        after = server.every_worker()
        assert all((not on) == expect_killed for on, _ in after.values()), after
        if mode == "lazy":
            acked = {int(a.process.rsplit(":", 1)[1]) for a in store.acks()}
            assert server.proc.pid not in acked
            assert acked >= set(before)
    finally:
        server.stop()
        store.close()
