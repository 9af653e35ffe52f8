"""bench/bench_reload.py runs (its in-process part, on a small document): the benchmark the
"Reload cost" docs quote keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_reload_benchmark_runs_on_a_small_document() -> None:
    """The script prints a full and an incremental time for each reload path."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_reload.py"), "--no-fleet", "--flags", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for path in ("TOML file", "JSON file", "store (JSON from Redis)"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {path} |"))
        assert row.endswith("x |"), row  # a full / incremental ratio was computed
