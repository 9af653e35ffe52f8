"""What README shows is what the code does: the example files and their quoted output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rampup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_broken_example_reports_the_quoted_problems() -> None:
    """`rampup check examples/broken.toml` prints README's four located problems, exit 1."""
    result = _rampup("check", "examples/broken.toml")
    assert result.returncode == 1
    readme = (ROOT / "README.md").read_text()
    for line in result.stderr.splitlines():
        assert line.rstrip() in readme, line
    assert "examples/broken.toml:10: flags.new-checkout.rules[0].serv" in result.stderr
    assert "Traceback" not in result.stderr


def test_bundled_example_is_valid_and_matches_the_package_copy() -> None:
    """examples/flags.toml checks clean and is the file `rampup demo` serves."""
    result = _rampup("check", "examples/flags.toml")
    assert result.returncode == 0, result.stderr
    assert "5 flags, 3 segments" in result.stdout
    bundled = ROOT / "src" / "rampup" / "data" / "flags.toml"
    assert (ROOT / "examples" / "flags.toml").read_bytes() == bundled.read_bytes()
