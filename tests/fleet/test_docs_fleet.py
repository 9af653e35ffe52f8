"""docs/fleet.md's examples that need Redis (skipped by the docs test) run here against the
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


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every skipped-for-redis python and console block, in order."""
    text = DOC.read_text()
    found = re.findall(
        r"<!-- docs-test: skip \(needs redis\) -->\n```(python|console)\n(.*?)```", text, re.S
    )
    # TLS needs a certificate the reader has (test_one_line covers rediss://); the benchmark
    # is run by hand
    return [
        (lang, code) for lang, code in found if "rediss://" not in code and "bench/" not in code
    ]


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
