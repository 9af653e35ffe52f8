"""docs/flag-file-advanced.md runs as the docs test runs it: each ```python block as a script
and each ```console `$ rampup ...` line as a command, in a directory holding flags.toml."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "flag-file-advanced.md").read_text(encoding="utf-8")
PYTHON = re.findall(r"^```python\n(.*?)^```", PAGE, re.M | re.S)
CONSOLE = [
    line[2:]
    for block in re.findall(r"^```console\n(.*?)^```", PAGE, re.M | re.S)
    for line in block.splitlines()
    if line.startswith("$ ")
]


def workdir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "examples" / "flags.toml", tmp_path / "flags.toml")
    return tmp_path


def test_page_has_examples() -> None:
    """The page has runnable examples (the tests below are not vacuous)."""
    assert len(PYTHON) >= 4
    assert len(CONSOLE) >= 2


@pytest.mark.parametrize("code", PYTHON, ids=[f"python{i}" for i in range(len(PYTHON))])
def test_python_block_runs(tmp_path: Path, code: str) -> None:
    """Each Python example runs to the end as a standalone script."""
    cwd = workdir(tmp_path)
    (cwd / "block.py").write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "block.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("line", CONSOLE)
def test_console_line_runs(tmp_path: Path, line: str) -> None:
    """Each `$ rampup ...` line exits 0."""
    argv = shlex.split(line)
    assert argv[0] == "rampup"
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *argv[1:]],
        cwd=workdir(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
