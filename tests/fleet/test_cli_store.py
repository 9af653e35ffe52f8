"""The store commands as real subprocesses against a real redis-server: push (diff, located
problems, compare-and-set, the kill guard, --dry-run, --wait), kill, unkill, rollback, history,
status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rampup.redis_source import RedisSource
from rampup.store import Store

FLAGS = """\
version = 1

[flags.new-checkout]
description = "The rewritten checkout"
default = "off"
[[flags.new-checkout.rules]]
serve = "on"

[flags.dark-mode]
default = "off"
"""


def cli(*args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m rampup ARGS` (with --redis URL); never a traceback."""
    extra = ["--redis", redis_url] if redis_url else []
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RAMPUP_REDIS_URL": ""},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    path = tmp_path / "flags.toml"
    path.write_text(FLAGS)
    return path


@pytest.fixture
def store(redis_url: str) -> Store:
    s = Store(redis_url, "shop")
    yield s
    s.close()


def push(flags: Path, redis_url: str, *more: str) -> subprocess.CompletedProcess[str]:
    return cli("push", str(flags), "--namespace", "shop", *more, redis_url=redis_url)


def test_push_writes_a_version_and_prints_the_diff(
    flags: Path, redis_url: str, store: Store
) -> None:
    """A first push lists the flags added and writes version 1; pushing it again changes nothing."""
    proc = push(flags, redis_url, "--reason", "launch", "--by", "ci")
    assert proc.returncode == 0, proc.stderr
    assert "+ flag dark-mode (added)" in proc.stdout
    assert "pushed v1" in proc.stdout
    live = store.get()
    assert live is not None
    assert (live.version, live.by, live.reason) == (1, "ci", "launch")
    again = push(flags, redis_url)
    assert again.returncode == 0
    assert "no change" in again.stdout
    assert store.head()[0] == 1


def test_push_of_an_invalid_file_lists_every_located_problem(
    tmp_path: Path, redis_url: str, store: Store
) -> None:
    """An invalid file exits 1 with each problem's file and line, and writes nothing."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[flags.a]\ndefault = "maybe"\n\n[flags.b]\nrulez = []\n')
    proc = push(bad, redis_url)
    assert proc.returncode == 1
    assert "2 problems" in proc.stderr
    assert f"{bad}:2" in proc.stderr
    assert store.get() is None


def test_push_diff_highlights_kill_flips_and_changed_fields(flags: Path, redis_url: str) -> None:
    """A push that kills a flag shows it first with !!, and names the changed fields."""
    assert push(flags, redis_url).returncode == 0
    flags.write_text(
        FLAGS.replace('default = "off"\n[[', 'default = "off"\nkilled = true\n[[').replace(
            '[flags.dark-mode]\ndefault = "off"', '[flags.dark-mode]\ndefault = "on"'
        )
    )
    proc = push(flags, redis_url, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    kill = next(i for i, line in enumerate(lines) if "!! KILL   new-checkout" in line)
    changed = next(i for i, line in enumerate(lines) if "~ flag dark-mode: default changed" in line)
    assert kill < changed
    assert "dry run: nothing written" in proc.stdout


def test_dry_run_writes_nothing(flags: Path, redis_url: str, store: Store) -> None:
    """--dry-run prints the diff and leaves the store untouched."""
    proc = push(flags, redis_url, "--dry-run")
    assert proc.returncode == 0
    assert store.get() is None


def test_compare_and_set_conflict_exits_3_naming_the_last_writer(
    flags: Path, redis_url: str
) -> None:
    """--expect an old version: exit 3, naming who wrote the live version."""
    assert push(flags, redis_url, "--by", "alice").returncode == 0
    assert (
        cli(
            "kill",
            "dark-mode",
            "--reason",
            "slow",
            "--namespace",
            "shop",
            "--by",
            "bob",
            redis_url=redis_url,
        ).returncode
        == 0
    )
    flags.write_text(FLAGS + '\n[flags.extra]\ndefault = "off"\n')
    proc = push(flags, redis_url, "--expect", "1", "--force")
    assert proc.returncode == 3
    assert "at version 2, not 1" in proc.stderr
    assert "bob (slow)" in proc.stderr


def test_a_push_that_would_undo_a_kill_is_refused(
    flags: Path, redis_url: str, store: Store
) -> None:
    """The live document kills a flag the file does not: exit 4 and nothing written, unless the
    file kills it too or --force is given."""
    assert push(flags, redis_url).returncode == 0
    assert (
        cli(
            "kill", "new-checkout", "--reason", "5xx", "--namespace", "shop", redis_url=redis_url
        ).returncode
        == 0
    )
    flags.write_text(FLAGS + '\n[flags.extra]\ndefault = "off"\n')
    proc = push(flags, redis_url)
    assert proc.returncode == 4
    assert "refusing to push" in proc.stderr
    assert "new-checkout" in proc.stderr
    assert store.head()[0] == 2
    flags.write_text(
        FLAGS.replace('default = "off"\n[[', 'default = "off"\nkilled = true\n[[')
        + '\n[flags.extra]\ndefault = "off"\n'
    )
    assert push(flags, redis_url).returncode == 0
    flags.write_text(FLAGS)
    forced = push(flags, redis_url, "--force")
    assert forced.returncode == 0
    assert "!! UNKILL new-checkout" in forced.stdout
    assert store.get().killed() == set()


def test_kill_and_unkill_flip_the_switch_for_every_process(
    flags: Path, redis_url: str, store: Store
) -> None:
    """kill and unkill write new versions with the reason; a second kill is a no-op."""
    assert push(flags, redis_url).returncode == 0
    proc = cli(
        "kill", "new-checkout", "--reason", "errors up", "--namespace", "shop", redis_url=redis_url
    )
    assert proc.returncode == 0, proc.stderr
    assert "killed new-checkout" in proc.stdout
    assert store.get().killed() == {"new-checkout"}
    again = cli("kill", "new-checkout", "--reason", "x", "--namespace", "shop", redis_url=redis_url)
    assert "already killed" in again.stdout
    assert store.head()[0] == 2
    assert (
        cli(
            "unkill",
            "new-checkout",
            "--reason",
            "fixed",
            "--namespace",
            "shop",
            redis_url=redis_url,
        ).returncode
        == 0
    )
    assert store.get().killed() == set()
    unknown = cli("kill", "nope", "--reason", "x", "--namespace", "shop", redis_url=redis_url)
    assert unknown.returncode == 1
    assert "no flag 'nope'" in unknown.stderr


def test_kill_requires_a_reason(redis_url: str) -> None:
    """--reason is mandatory: an emergency kill says why (usage error, exit 2)."""
    proc = cli("kill", "x", redis_url=redis_url)
    assert proc.returncode == 2
    assert "--reason" in proc.stderr


def test_history_and_rollback(flags: Path, redis_url: str, store: Store) -> None:
    """history lists versions newest first; rollback re-pushes the previous one, and refuses
    to lift a kill without --force."""
    assert push(flags, redis_url, "--reason", "first").returncode == 0
    flags.write_text(FLAGS + '\n[flags.extra]\ndefault = "off"\n')
    assert push(flags, redis_url, "--reason", "second").returncode == 0
    hist = cli("history", "--namespace", "shop", redis_url=redis_url)
    assert hist.returncode == 0
    assert [line.split()[0] for line in hist.stdout.splitlines()] == ["v2", "v1"]
    back = cli("rollback", "--namespace", "shop", "--reason", "oops", redis_url=redis_url)
    assert back.returncode == 0, back.stderr
    assert "- flag extra (removed)" in back.stdout
    assert "rollback to v1: oops" in back.stdout
    assert "extra" not in store.get().data["flags"]
    assert (
        cli(
            "kill", "dark-mode", "--reason", "x", "--namespace", "shop", redis_url=redis_url
        ).returncode
        == 0
    )
    refused = cli("rollback", "--to", "2", "--namespace", "shop", redis_url=redis_url)
    assert refused.returncode == 4
    data = json.loads(cli("history", "--json", "--namespace", "shop", redis_url=redis_url).stdout)
    assert [d["version"] for d in data] == [4, 3, 2, 1]
    assert data[0]["killed"] == ["dark-mode"]
    missing = cli("rollback", "--to", "99", "--namespace", "shop", redis_url=redis_url)
    assert missing.returncode == 1
    assert "not in the history" in missing.stderr


def test_push_wait_returns_once_every_live_process_serves_it(
    flags: Path, redis_url: str, store: Store
) -> None:
    """--wait exits 0 once the serving processes acknowledged the new sha."""
    assert push(flags, redis_url).returncode == 0
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018 - this process now serves and acknowledges
        flags.write_text(FLAGS + '\n[flags.extra]\ndefault = "off"\n')
        proc = push(flags, redis_url, "--wait", "30")
        assert proc.returncode == 0, proc.stderr
        assert "all 1 live process(es) serve" in proc.stdout
        assert "extra" in source.snapshot.flags
    finally:
        source.close()


def test_push_wait_names_the_laggards(flags: Path, redis_url: str, store: Store) -> None:
    """A live process that does not pick up the new sha is named, exit 5."""
    assert push(flags, redis_url).returncode == 0
    store.ack("web-7:4242", "0ldsha", at=time.time() + 60)  # heard from, never catches up
    flags.write_text(FLAGS + '\n[flags.extra]\ndefault = "off"\n')
    proc = push(flags, redis_url, "--wait", "0.3")
    assert proc.returncode == 5
    assert "web-7:4242 serves 0ldsha" in proc.stderr


def test_status_lists_processes_and_marks_stale_ones(
    flags: Path, redis_url: str, store: Store
) -> None:
    """status shows the live version, each process's sha and age, stale ones marked."""
    assert push(flags, redis_url).returncode == 0
    live = store.get()
    store.ack("web-1:10", live.sha)
    store.ack("web-2:20", "0ldsha", at=time.time() - 600)
    proc = cli("status", "--namespace", "shop", redis_url=redis_url)
    assert proc.returncode == 0
    assert "namespace 'shop': v1" in proc.stdout
    line1 = next(line for line in proc.stdout.splitlines() if "web-1:10" in line)
    line2 = next(line for line in proc.stdout.splitlines() if "web-2:20" in line)
    assert "current" in line1
    assert "stale" not in line1
    assert "BEHIND" in line2
    assert "stale" in line2
    data = json.loads(cli("status", "--json", "--namespace", "shop", redis_url=redis_url).stdout)
    assert {p["process"]: p["stale"] for p in data["processes"]} == {
        "web-1:10": False,
        "web-2:20": True,
    }


def test_unreachable_redis_is_a_clear_error(flags: Path) -> None:
    """No server at the URL: exit 1 saying Redis cannot be used, no traceback."""
    proc = cli("status", redis_url="redis://127.0.0.1:9/0")
    assert proc.returncode == 1
    assert "cannot use Redis at redis://127.0.0.1:9/0" in proc.stderr
    nourl = cli("status")
    assert nourl.returncode == 2
    assert "--redis" in nourl.stderr


def test_namespace_can_come_from_the_url(flags: Path, redis_url: str) -> None:
    """?namespace= in the URL selects the namespace, like flags="redis://...?namespace=shop"."""
    proc = cli("push", str(flags), redis_url=redis_url + "?namespace=web")
    assert proc.returncode == 0
    assert "namespace 'web'" in proc.stdout
    assert Store(redis_url, "web").head() is not None
