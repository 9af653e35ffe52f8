"""docs/guard.md's examples that need Redis (skipped by the docs tests) run here against the
test's redis-server: the fleet guard's one line, and `rampup guard status --redis`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from rampup.store import Store

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "guard.md"


def test_the_guard_page_redis_examples_run(redis_url: str, tmp_path: Path) -> None:
    """Every Redis example of docs/guard.md runs without error against a real redis-server;
    the status command shows the pushed rollout."""
    store = Store(redis_url, "shop")
    store.push({"flags": {"new-checkout": {"rules": [{"rollout": {"stages": [1, 5, 100]}}]}}})
    store.close()
    found = re.findall(
        r"<!-- docs-test: skip \(needs redis; covered by tests/fleet/test_docs_guard_fleet.py::"
        r"test_the_guard_page_redis_examples_run\) -->\n```(python|console)\n(.*?)```",
        DOC.read_text(),
        re.S,
    )
    assert [lang for lang, _ in found] == ["python", "console"]
    for lang, raw in found:
        code = raw.replace("redis://redis:6379/0", redis_url)
        if lang == "python":
            cmd = [sys.executable, "-c", code]
        else:
            (line,) = code.splitlines()
            cmd = [sys.executable, "-m", "rampup", *shlex.split(line[len("$ rampup ") :])]
        proc = subprocess.run(
            cmd,
            cwd=tmp_path,
            env={**os.environ, "RAMPUP_REDIS_URL": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{code}\n{proc.stderr}"
    assert "new-checkout: stage 0 (on 1 %)" in proc.stdout
