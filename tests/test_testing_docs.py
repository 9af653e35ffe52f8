"""docs/testing.md runs: each ```python block as a script (as the docs test runs it), and the
blocks written as pytest test modules also under pytest, with the plugin and a flag file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "testing.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.M | re.S)


def _workdir(tmp_path: Path, code: str) -> Path:
    shutil.copy(ROOT / "examples" / "flags.toml", tmp_path / "flags.toml")
    (tmp_path / "test_block.py").write_text(code, encoding="utf-8")
    return tmp_path


def test_blocks_found() -> None:
    """The page has its examples (so the tests below are not vacuous)."""
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_runs_as_a_script(tmp_path: Path, code: str) -> None:
    """The block runs to the end as a standalone script, in a directory holding flags.toml."""
    pytest.importorskip("flask")
    cwd = _workdir(tmp_path, code)
    proc = subprocess.run(
        [sys.executable, "test_block.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


PYTEST_BLOCKS = [code for code in BLOCKS if "rampup_flags" in code]


@pytest.mark.parametrize(
    "code", PYTEST_BLOCKS, ids=[f"pytest{i}" for i in range(len(PYTEST_BLOCKS))]
)
def test_pytest_block_passes_under_pytest(tmp_path: Path, code: str) -> None:
    """The blocks that use the plugin's fixture and marker pass under pytest, every test."""
    pytest.importorskip("flask")
    cwd = _workdir(tmp_path, code)
    (cwd / "pytest.ini").write_text("[pytest]\nrampup_flags_file = flags.toml\n")
    expected = len(re.findall(r"^def test_", code, re.M))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_block.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= expected
    assert "failed" not in proc.stdout
