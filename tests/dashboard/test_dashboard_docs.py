"""docs/dashboard.md's Python examples run as standalone scripts (cwd: a temp dir holding the
example flag file as flags.toml), as the docs test runs them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("fastapi")

from .conftest import EXAMPLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"
BLOCK = re.compile(
    r"(<!-- docs-test: skip \((?P<why>[^)]*)\) -->\n)?```python\n(?P<code>.*?)```", re.S
)
BLOCKS = [(m.group("code"), m.group("why")) for m in BLOCK.finditer(DOC.read_text())]


def test_the_page_has_examples() -> None:
    """The docs page holds runnable examples (and the Django one is skipped, with a reason)."""
    assert len([b for b in BLOCKS if b[1] is None]) >= 4
    assert any(why and "Django" in why for _, why in BLOCKS)


@pytest.mark.parametrize("index", [i for i, b in enumerate(BLOCKS) if b[1] is None])
def test_docs_example_runs(index: int, tmp_path: Path) -> None:
    """Each example exits 0."""
    shutil.copy(EXAMPLE, tmp_path / "flags.toml")
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index][0])
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
