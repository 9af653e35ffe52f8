"""docs/fleet.md's examples that need Redis (the docs test leaves them out) run here against the
test's redis-server: each python block in a fresh interpreter, each `$ rampup` line as a
subprocess, in document order, in a directory holding examples/flags.toml as flags.toml."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "fleet.md"
HOSTS = ("redis://redis.internal:6379/0", "redis://redis:6379/0")


#: the docs test skips a block whose marker names this test as the one that runs it
MARKER = (
    r"<!-- docs-test: skip \([^);]*; covered by "
    r"tests/fleet/test_docs_fleet\.py::test_the_fleet_page_examples_run_against_a_real_redis\) -->"
)


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every python and console block whose skip marker names this test, in
    order (the TLS example names tests/fleet/test_one_line.py, which has a certificate)."""
    return re.findall(MARKER + r"\n```(python|console)\n(.*?)```", DOC.read_text(), re.S)


def test_the_fleet_page_examples_run_against_a_real_redis(redis_url: str, tmp_path: Path) -> None:
    """Every Redis example of docs/fleet.md runs without error against a real redis-server."""
    shutil.copy(ROOT / "examples" / "flags.toml", tmp_path / "flags.toml")
    env = {**os.environ, "RAMPUP_FLAGS_URL": redis_url + "?namespace=shop"}
    found = blocks()
    assert len(found) >= 6
    for lang, raw in found:
        code = raw.replace("/var/cache/shop/flags.json", str(tmp_path / "cache.json"))
        for host in HOSTS:
            code = code.replace(host, redis_url)
        if lang == "python":
            proc = subprocess.run(
                [sys.executable, "-c", code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, f"{code}\n{proc.stderr}"
            continue
        for line in code.splitlines():
            assert line.startswith("$ rampup "), line
            proc = subprocess.run(
                [sys.executable, "-m", "rampup", *shlex.split(line[len("$ rampup ") :])],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
