"""The core never imports a web framework or OpenTelemetry (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import rampup

SRC = Path(rampup.__file__).parent
# Adapters and telemetry may import their framework / OpenTelemetry; nothing else may.
NOT_CORE = {"flask", "fastapi", "django", "telemetry", "store_telemetry", "__main__"}
REQUIRED = {
    "rampup",
    "rampup.model",
    "rampup.bucketing",
    "rampup.operators",
    "rampup.engine",
    "rampup.config",
    "rampup._files",
    "rampup.context",
    "rampup.cli",
    "rampup.cli.check",
    "rampup.cli.explain",
    "rampup.cli.simulate",
}


def _core_modules() -> list[str]:
    found = {"rampup"}
    for info in pkgutil.iter_modules([str(SRC)], "rampup."):
        short = info.name.split(".")[-1]
        if short not in NOT_CORE and not short.startswith("_telemetry"):
            found.add(info.name)
    found |= {info.name for info in pkgutil.iter_modules([str(SRC / "cli")], "rampup.cli.")}
    return sorted(found)


CORE = _core_modules()
FORBIDDEN = ("flask", "django", "starlette", "fastapi", "opentelemetry", "werkzeug")

_PROBE = """
import importlib, json, sys
try:  # the store's own dependency (rampup[redis]); redis-py >= 7 may load OpenTelemetry itself
    import redis
except ImportError:
    pass
baseline = set(sys.modules)
importlib.import_module(sys.argv[1])
# Exercise the core too: load, evaluate, run a command's code path.
import rampup
snap = rampup.load({"flags": {"f": {"rules": [{"split": {"on": 50, "off": 50}}]}}})
snap.evaluate("f", rampup.Subject("u"))
forbidden = tuple(sys.argv[2:])
print(json.dumps(sorted(m for m in set(sys.modules) - baseline if m.split(".")[0] in forbidden)))
"""


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_framework(module: str) -> None:
    """Importing (and using) a core module pulls in no framework and no OpenTelemetry."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *FORBIDDEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_core_modules_discovered() -> None:
    """The module list covers the whole core (so a new core module is checked too)."""
    assert set(CORE) >= REQUIRED


def test_probe_detects_a_framework() -> None:
    """The probe itself works: importing an adapter's framework is seen."""
    pytest.importorskip("starlette")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "starlette.responses", *FORBIDDEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "starlette" in json.loads(proc.stdout)
