"""FileSource starts its watcher at the first snapshot read: a gunicorn ``--preload`` master,
which builds the app but serves no request, runs no watcher thread, and every worker still
serves an edit of the flag file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rampup.sources import FileSource

HERE = Path(__file__).parent
#: a guard against hanging, not a timing threshold: the conditions hold within a second or two
HANG_GUARD = 30.0
WORKERS = 2
FLAGS = '[flags.checkout]\ndefault = "on"\n'


def wait_until(condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition still false"
        time.sleep(0.02)
    return value


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_no_watcher_before_the_first_read(tmp_path: Path) -> None:
    """Constructing a FileSource starts no thread; the first snapshot read starts exactly one,
    and ``watch=False`` never starts one."""
    path = tmp_path / "flags.toml"
    path.write_text(FLAGS)
    name = "rampup-watch:flags.toml"

    def watchers() -> int:
        return sum(t.name == name for t in threading.enumerate())

    before = watchers()
    source = FileSource(path, interval=0.05)
    quiet = FileSource(path, watch=False)
    try:
        assert watchers() == before
        assert source.snapshot.flags["checkout"].default == "on"
        source.snapshot  # noqa: B018 - a second read starts no second watcher
        quiet.snapshot  # noqa: B018
        assert watchers() == before + 1
    finally:
        source.close()


class Gunicorn:
    """``gunicorn --preload -w 2`` serving file_app on 127.0.0.1."""

    def __init__(self, flags: Path, mode: str) -> None:
        self.port = free_port()
        #: the master's thread names, written once it has loaded the app (gunicorn_conf.py)
        self.report = flags.with_name("master-threads.txt")
        env = {
            **os.environ,
            "LAZY_FLAGS": str(flags),
            "LAZY_MODE": mode,
            "LAZY_REPORT": str(self.report),
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
                "-c",
                str(HERE / "gunicorn_conf.py"),
                "--log-level",
                "warning",
                "file_app:app",
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

    def get(self, sleep: float) -> tuple[int, bool]:
        url = f"http://127.0.0.1:{self.port}/?sleep={sleep}"
        with urllib.request.urlopen(url, timeout=10) as r:
            pid, on = r.read().decode().split()
        return int(pid), on == "1"

    def every_worker(self) -> dict[int, bool]:
        """Concurrent slow requests until every worker has answered: pid -> checkout on?"""
        seen: dict[int, bool] = {}
        while len(seen) < WORKERS:
            answers: list[tuple[int, bool]] = []
            threads = [
                threading.Thread(target=lambda out=answers: out.append(self.get(0.2)))
                for _ in range(WORKERS * 2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seen.update(answers)
        return seen

    def master_watchers(self) -> list[str]:
        """The rampup threads of the master (which serves no request)."""
        names = wait_until(lambda: self.report.exists() and self.report.read_text())
        return [n for n in names.split("\n") if n.startswith("rampup-")]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("mode", "in_master"), [("lazy", []), ("master-read", ["rampup-watch:flags.toml"])]
)
def test_a_preload_master_runs_no_watcher(tmp_path: Path, mode: str, in_master: list[str]) -> None:
    """Under gunicorn --preload the master (which serves nothing) runs no watcher thread,
    while every worker serves an edit of the file; the control, whose master reads the
    snapshot at import, shows that the check would see a watcher there."""
    pytest.importorskip("gunicorn")
    path = tmp_path / "flags.toml"
    path.write_text(FLAGS)
    server = Gunicorn(path, mode)
    try:
        assert all(server.every_worker().values())
        assert server.master_watchers() == in_master
        tmp = tmp_path / "flags.toml.tmp"
        tmp.write_text(FLAGS + "killed = true\n")
        os.replace(tmp, path)
        wait_until(lambda: not any(server.every_worker().values()))
    finally:
        server.stop()
