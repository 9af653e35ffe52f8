"""Hot reload of a flag file in a real temporary directory, including across fork()."""

from __future__ import annotations

import gc
import logging
import os
import select
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rampup
from rampup import Subject
from rampup._request import Runtime, Settings
from rampup.sources import FileSource, StaticSource, as_source
from rampup.wsgi import WSGIView

INTERVAL = 0.05
SETTLE = 0.1  # a changed file must stay the same this long (the default, 1 s, slows the suite)
DEADLINE = 10.0  # generous bound for a loaded 2-core machine; the loop exits as soon as true


def flag_file(default: str, extra: str = "") -> str:
    return f'version = 1\n\n[flags.checkout]\ndefault = "{default}"\n{extra}'


def write(path: Path, text: str) -> None:
    """An in-place edit, as an editor that truncates and rewrites does."""
    with open(path, "w") as fh:
        fh.write(text)


def replace(path: Path, text: str) -> None:
    """An atomic edit: write a temporary file, then rename it over the flag file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def served(source: FileSource | StaticSource) -> bool:
    return bool(source.snapshot.evaluate("checkout", Subject("u")).value)


@pytest.fixture
def flag_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.toml"
    path.write_text(flag_file("off"))
    return path


@pytest.fixture
def source(flag_path: Path) -> Iterator[FileSource]:
    s = FileSource(flag_path, interval=INTERVAL, settle=SETTLE)
    yield s
    s.close()


def test_valid_in_place_edit_is_picked_up(flag_path: Path, source: FileSource) -> None:
    """Rewriting the file in place serves the new flags without a restart."""
    assert not served(source)
    write(flag_path, flag_file("on"))
    wait_for(lambda: served(source), "the in-place edit")
    assert source.reloads == 1
    assert source.last_error is None


def test_atomic_rename_over_is_picked_up(flag_path: Path, source: FileSource) -> None:
    """Write-then-rename (what deploy tools and many editors do) is picked up too."""
    replace(flag_path, flag_file("on"))
    wait_for(lambda: served(source), "the renamed-over file")
    replace(flag_path, flag_file("off", "# a comment\n"))
    wait_for(lambda: not served(source), "the second rename")
    assert source.reloads == 2


def test_invalid_edit_keeps_last_good_and_logs_once(
    flag_path: Path, source: FileSource, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid edit is logged once, with its location, and the last good flags keep serving;
    fixing the file serves it again."""
    caplog.set_level(logging.ERROR, logger="rampup")
    write(flag_path, flag_file("on") + "rulez = []\n")
    wait_for(lambda: source.last_error is not None, "the invalid edit to be seen")
    assert not served(source)  # still the last good snapshot
    for _ in range(5):  # more polls of the unchanged bad file: no new log line
        source.poll()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert f"{flag_path}:5" in message
    assert "flags.checkout.rulez" in message
    assert "last good" in message
    write(flag_path, flag_file("on"))
    wait_for(lambda: served(source), "the fixed file")
    assert source.last_error is None


def test_deleted_file_keeps_serving(
    flag_path: Path, source: FileSource, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted flag file leaves the last snapshot serving; a new file is picked up."""
    write(flag_path, flag_file("on"))
    wait_for(lambda: served(source), "the edit")
    flag_path.unlink()
    wait_for(lambda: "is gone" in caplog.text, "the deletion to be logged")
    assert served(source)
    replace(flag_path, flag_file("off"))
    wait_for(lambda: not served(source), "the recreated file")


def test_request_in_flight_keeps_its_snapshot(flag_path: Path, source: FileSource) -> None:
    """A request that started before a reload sees the old flags to its end, even for flags
    it reads only after the reload; the next request sees the new ones."""
    flag_path.write_text(flag_file("off") + '\n[flags.other]\ndefault = "off"\n')
    source.reload()
    runtime = Runtime(source, Settings())
    before = runtime.open(None, WSGIView({"HTTP_COOKIE": "rampup_id=" + "a" * 32}))
    assert before.enabled("checkout") is False
    replace(flag_path, flag_file("on") + '\n[flags.other]\ndefault = "on"\n')
    wait_for(lambda: served(source), "the reload")
    assert before.enabled("checkout") is False
    assert before.enabled("other") is False  # first read after the reload: old snapshot still
    after = runtime.open(None, WSGIView({}))
    assert after.enabled("checkout") is True
    assert after.enabled("other") is True


def test_close_stops_the_watcher(flag_path: Path) -> None:
    """close() ends the watcher thread; later edits are ignored until reload()."""
    source = FileSource(flag_path, interval=INTERVAL, settle=SETTLE)
    thread = source._thread
    assert thread is not None
    source.close()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    write(flag_path, flag_file("on"))
    assert not served(source)
    assert source.reload() is True
    assert served(source)


def test_unwatched_source_and_other_inputs(flag_path: Path) -> None:
    """watch=False starts no thread; as_source accepts paths, mappings, snapshots, sources."""
    source = as_source(flag_path, watch=False)
    assert isinstance(source, FileSource)
    assert source._thread is None
    snapshot = rampup.load({"flags": {"x": {}}})
    assert isinstance(as_source({"flags": {"x": {}}}), StaticSource)
    assert as_source(snapshot).snapshot is snapshot
    assert as_source(source) is source
    with pytest.raises(TypeError, match="flags="):
        as_source(42)


def test_bad_file_at_start_fails_loudly(tmp_path: Path) -> None:
    """The first load raises ConfigError: a bad file fails the deploy, not a request."""
    path = tmp_path / "flags.toml"
    path.write_text(flag_file("on") + "rulez = []\n")
    with pytest.raises(rampup.ConfigError, match="rulez"):
        FileSource(path)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_forked_child_keeps_reloading(flag_path: Path, source: FileSource) -> None:
    """After fork() (gunicorn --preload, uWSGI), the child's own watcher picks up an edit the
    parent makes after the fork."""
    parent_thread = source._thread
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock the child;
        # the child here only touches the source and then _exit()s.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit code, never return
        code = 1
        try:
            os.close(read_end)
            restarted = source._thread is not parent_thread and source._thread is not None
            alive = restarted and source._thread is not None and source._thread.is_alive()
            deadline = time.monotonic() + DEADLINE
            while not served(source) and time.monotonic() < deadline:
                time.sleep(0.01)
            ok = alive and served(source)
            os.write(write_end, f"restarted={restarted} alive={alive} ok={ok}".encode())
            code = 0 if ok else 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        replace(flag_path, flag_file("on"))
        ready, _, _ = select.select([read_end], [], [], DEADLINE * 2)
        report = os.read(read_end, 200).decode() if ready else "no report from the child"
    finally:
        os.close(read_end)
        status = _reap(pid)
    assert report == "restarted=True alive=True ok=True"
    assert status == 0


def _reap(pid: int) -> int:
    """Wait for the child, killing it if it overstays; return its exit code."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


def test_watcher_is_a_daemon_and_ends_with_its_source(flag_path: Path) -> None:
    """The watcher never keeps a process alive, nor its source: it ends once the source is
    garbage collected."""
    source = FileSource(flag_path, interval=INTERVAL, settle=SETTLE)
    thread = source._thread
    assert thread is not None
    assert thread.daemon
    del source
    gc.collect()
    thread.join(DEADLINE)
    assert not thread.is_alive()
