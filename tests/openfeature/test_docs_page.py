"""docs/openfeature.md: every ```python block runs as a standalone script, as the docs test
does (cwd: a temp dir holding examples/flags.toml as flags.toml)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "openfeature.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text("utf-8"), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_docs_example_runs(code: str, tmp_path: Path) -> None:
    """The example runs without error and prints what the page says it prints."""
    shutil.copy(ROOT / "examples" / "flags.toml", tmp_path / "flags.toml")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for expected in re.findall(r"^# (.+)$", code, re.M):  # "# output" lines after a print
        assert expected in proc.stdout


def test_page_has_examples() -> None:
    """The page's examples were found (so the test above is not vacuous)."""
    assert len(BLOCKS) >= 3
