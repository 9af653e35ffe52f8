"""Reloads parse exactly the bytes whose stability was checked (issue 12, item 4).

Each test drives ``FileSource.poll()`` by hand (``watch=False``) on real files, so the races are
reproduced deterministically, without sleeping or timing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from rampup import Subject
from rampup import sources as sources_module
from rampup.sources import FileSource

A = 'version = 1\n\n[flags.checkout]\ndefault = "off"\n\n[flags.keep]\ndefault = "on"\n'
B = 'version = 1\n\n[flags.checkout]\ndefault = "on"\n\n[flags.keep]\ndefault = "on"\n'
# The first half of a file being written: valid TOML on its own, but without the flag `keep`.
HALF = 'version = 1\n\n[flags.checkout]\ndefault = "off"\n'


def replace(path: Path, text: str) -> None:
    """An atomic edit: write a temporary file, then rename it over the flag file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_in_place(path: Path, text: str) -> None:
    """An in-place write (same inode), as `echo > file` or a slow writer does."""
    with open(path, "w") as fh:
        fh.write(text)


def state(source: FileSource) -> tuple[object, object]:
    """(checkout, keep) as served: keep is None when the flag is missing (a half file)."""
    snap = source.snapshot
    return snap.evaluate("checkout", Subject("u")).value, snap.evaluate("keep", Subject("u")).value


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "flags.toml"
    p.write_text(A)
    return p


def test_write_starting_between_check_and_read_is_not_parsed(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that starts right after the watcher checked the file's signature does not get
    its first half parsed: the watcher confirms the signature after reading and waits."""
    source = FileSource(path, watch=False)
    source.settle = 0  # no settling delay: only the read-then-confirm check protects
    replace(path, B)
    source.poll()  # sees B (a watcher that waits one poll for stability reads it next time)
    seen = [state(source)]
    real = sources_module._signature
    armed = [True]

    def signature_then_writer_starts(p: Path) -> object:
        sig = real(p)
        if armed[0]:
            armed[0] = False
            write_in_place(path, HALF)  # the writer's first half lands after the check
        return sig

    monkeypatch.setattr(sources_module, "_signature", signature_then_writer_starts)
    source.poll()
    seen.append(state(source))
    assert (False, None) not in seen, "the half-written file was served"
    write_in_place(path, A)  # the writer finishes
    for _ in range(2):
        source.poll()
    assert state(source) == (False, True)


def test_stalled_writer_is_not_served_half_a_file(path: Path) -> None:
    """A writer pausing mid-write for several polls does not get its partial file served; the
    complete file is served once it has settled."""
    source = FileSource(path, watch=False)
    source.settle = 60.0  # far longer than the polls below take
    write_in_place(path, B)
    for _ in range(3):
        source.poll()
    write_in_place(path, HALF)  # a new write, stalled after its first half
    for _ in range(5):
        source.poll()
        assert state(source)[1] is True, "the stalled writer's half file was served"
    write_in_place(path, B)  # the writer resumes and finishes
    source.settle = 0
    source.poll()
    assert state(source) == (True, True)


def test_same_size_edit_with_restored_mtime_is_reloaded(path: Path) -> None:
    """An in-place edit of the same size whose modification time is put back (`touch -r`, or
    two writes within one timestamp tick) is still reloaded: changes are seen by content."""
    source = FileSource(path, watch=False)
    source.settle = 0
    before = path.stat()
    edited = A.replace('default = "off"', 'default = "on" ')
    assert len(edited) == len(A)
    write_in_place(path, edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_size == before.st_size
    for _ in range(2):
        source.poll()
    assert state(source) == (True, True)


def test_touch_alone_does_not_reload(path: Path) -> None:
    """A new modification time with the same content is not a reload."""
    source = FileSource(path, watch=False)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert [source.poll() for _ in range(3)] == [False, False, False]
    assert source.reloads == 0


def test_kubernetes_configmap_symlink_swap(tmp_path: Path) -> None:
    """A ConfigMap volume: flags.toml -> ..data/flags.toml, ..data -> a timestamped directory
    swapped atomically by renaming a new link over ..data. The swap is seen and served, even
    with the old file's size and modification time."""
    first = tmp_path / "..2026_12_01_a"
    first.mkdir()
    (first / "flags.toml").write_text(A)
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "flags.toml").symlink_to("..data/flags.toml")
    source = FileSource(tmp_path / "flags.toml", watch=False)
    source.settle = 0  # no settling delay: reloaded at the first poll that reads it whole
    assert state(source) == (False, True)

    second = tmp_path / "..2026_12_01_b"
    second.mkdir()
    edited = A.replace('default = "off"', 'default = "on" ')
    (second / "flags.toml").write_text(edited)
    st = (first / "flags.toml").stat()
    os.utime(second / "flags.toml", ns=(st.st_atime_ns, st.st_mtime_ns))
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # what kubelet does
    (first / "flags.toml").unlink()
    first.rmdir()
    assert source.poll() is True
    assert state(source) == (True, True)


def test_reload_dropping_flags_names_them(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reload that removes flags logs a warning naming the flags dropped."""
    source = FileSource(path, watch=False)
    source.settle = 0
    caplog.set_level(logging.WARNING, logger="rampup")
    replace(path, HALF)
    assert source.poll() is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "drops 1 flag(s)" in warnings[0]
    assert warnings[0].endswith(": keep")


def test_gone_file_is_logged_once(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A deleted flag file is logged once, not at every poll, and the last flags keep serving."""
    source = FileSource(path, watch=False)
    caplog.set_level(logging.ERROR, logger="rampup")
    path.unlink()
    for _ in range(4):
        source.poll()
    assert len([r for r in caplog.records if "is gone" in r.getMessage()]) == 1
    assert state(source) == (False, True)


def test_write_atomic_replaces_whole_and_keeps_the_mode(path: Path) -> None:
    """rampup's writer renames a complete temporary file over the flag file: the watcher sees
    the new content whole, the file keeps its permissions, no temporary file is left."""
    from rampup._files import write_atomic

    source = FileSource(path, watch=False)
    source.settle = 0
    path.chmod(0o644)
    before = path.stat().st_ino
    write_atomic(path, B)
    assert path.stat().st_ino != before
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in path.parent.iterdir()) == ["flags.toml"]
    assert source.poll() is True
    assert state(source) == (True, True)


def test_large_file_is_hashed_every_tenth_poll(path: Path) -> None:
    """A file over 1 MiB with an unchanged signature is hashed only every 10th poll: a
    same-size edit with its mtime put back is seen within 10 polls, not at the first."""
    padding = '\n[flags.big]\ndescription = "' + "x" * (1024 * 1024) + '"\n'
    path.write_text(A + padding)
    source = FileSource(path, watch=False)
    source.settle = 0
    before = path.stat()
    write_in_place(path, A.replace('default = "off"', 'default = "on" ') + padding)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    polls = [source.poll() for _ in range(10)]
    assert polls.count(True) == 1
    assert polls[0] is False
    assert state(source) == (True, True)


def test_file_grown_past_the_size_cap_is_logged_once(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag file that grows past the size cap is logged once, like an invalid edit, and the
    last good flags keep serving."""
    from rampup import _files

    monkeypatch.setattr(_files, "MAX_BYTES", len(A) + 10)
    source = FileSource(path, watch=False)
    caplog.set_level(logging.ERROR, logger="rampup")
    replace(path, A + "# " + "x" * 100 + "\n")
    for _ in range(3):
        assert source.poll() is False
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1
    assert "the limit is" in errors[0]
    assert state(source) == (False, True)
