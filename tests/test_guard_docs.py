"""docs/guard.md's Python examples run, and bench_guard.py --quick prints its tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import rampup

ROOT = Path(__file__).resolve().parent.parent


def test_the_guard_page_examples_run(tmp_path: Path) -> None:
    """Each ```python block of docs/guard.md runs as a script; the example's flag ends killed."""
    text = (ROOT / "docs" / "guard.md").read_text(encoding="utf-8")
    # examples that need Redis run in tests/fleet/test_docs_guard_fleet.py
    blocks = re.findall(r"(<!-- docs-test: skip[^\n]*\n)?```python\n(.*?)```", text, re.S)
    blocks = [code for skip, code in blocks if not skip]
    assert blocks
    outputs = []
    for block in blocks:
        proc = subprocess.run(
            [sys.executable, "-c", block],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert any("True\nguard: on errors" in out for out in outputs)
    assert any(out.startswith("guard: on errors") for out in outputs)  # rampup.guard.start


def test_the_guard_page_flag_file_loads(tmp_path: Path) -> None:
    """The page's TOML example is a valid flag file with a guarded rollout."""
    text = (ROOT / "docs" / "guard.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(.*?)```", text, re.S)
    path = tmp_path / "flags.toml"
    path.write_text(block, encoding="utf-8")
    rollout = rampup.load(path).flags["new-checkout"].rules[1].rollout
    assert rollout is not None
    assert rollout.latency == "p99"
    assert len(rollout.not_before) == 3


def test_bench_guard_quick_smoke() -> None:
    """The benchmark drives the real guard end to end (a few runs per cell; figures not checked)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_guard.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # 24 false-halt cells and 2 healthy-rollout rows
    assert proc.stdout.count("| 0.5% |") + proc.stdout.count("| 2.0% |") == 24 + 2
    assert "| errors 5x | 2 % | 1 % |" in proc.stdout
    assert "latency +300 ms on 2 % (p99)" in proc.stdout
