"""`rampup refs`, run as a subprocess on a fixture project and on projects in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).parent / "fixtures" / "refs_project"


def refs(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    """Run `python -m rampup refs ARGS` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "rampup", "refs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refs_json(*args: str, cwd: Path = PROJECT) -> tuple[int, dict[str, Any]]:
    """Run refs with --json; (exit status, parsed output)."""
    proc = refs(*args, "--json", cwd=cwd)
    return proc.returncode, json.loads(proc.stdout)


def test_fixture_project_report() -> None:
    """The typo fails the run (exit 1); the dead, rolled-out and killed flags are listed."""
    proc = refs(".", "--flags", "flags.toml")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    typo = out.index("Read but not defined")
    assert "new-chekout  at app/views.py:16  did you mean 'new-checkout'?" in out[typo:]
    dead = out.index("Defined but never read")
    assert "old-banner  (only tests: tests/views_suite.py:14)" in out[dead:]
    ready = out.index("Ready to remove")
    assert (
        "dark-mode  'on' for everyone (rule 0 is serving everyone); read at app/views.py:14"
        in out[ready:]
    )
    assert "recommendations  killed: 'off' for everyone; read at app/views.py:18" in out[ready:]
    # A read through a receiver that is not a Flags is not reported as a typo.
    assert "'x'" not in out
    assert "  x  " not in out


def test_fixture_project_json() -> None:
    """--json gives every finding with file:line and kind."""
    code, data = refs_json("app", "tests", "--flags", "flags.toml")
    assert code == 1
    assert data["ok"] is False
    assert data["files_scanned"] == 3
    assert data["undefined"] == [
        {
            "key": "new-chekout",
            "did_you_mean": "new-checkout",
            "refs": [{"file": "app/views.py", "line": 16, "kind": "code"}],
        }
    ]
    assert [d["key"] for d in data["dead"]] == ["old-banner"]
    assert data["dead"][0]["test_refs"] == [
        {"file": "tests/views_suite.py", "line": 14, "kind": "test"}
    ]
    assert data["rolled_out"] == [
        {
            "key": "dark-mode",
            "variant": "on",
            "why": "rule 0 is serving everyone",
            "refs": [{"file": "app/views.py", "line": 14, "kind": "code"}],
        },
        {
            "key": "old-banner",
            "variant": "off",
            "why": "the default, no rules",
            "refs": [{"file": "tests/views_suite.py", "line": 14, "kind": "test"}],
        },
    ]
    assert [(k["key"], k["variant"]) for k in data["killed"]] == [("recommendations", "off")]
    assert data["refs"]["new-checkout"] == [
        {"file": "app/views.py", "line": 8, "kind": "code"},
        {"file": "app/views.py", "line": 21, "kind": "code"},
        {"file": "app/templates/checkout.html", "line": 3, "kind": "template"},
        {"file": "tests/views_suite.py", "line": 9, "kind": "test"},
    ]
    assert data["refs"]["checkout-button"] == [
        {"file": "app/templates/checkout.html", "line": 4, "kind": "template"}
    ]


def _project(tmp_path: Path, flags: str, files: dict[str, str]) -> Path:
    (tmp_path / "flags.toml").write_text(flags)
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


RAMPING = """
[flags.search]
[[flags.search.rules]]
ramp = [
  { from = 2026-01-01, split = { on = 50, off = 50 } },
  { from = 2026-02-01, split = { on = 100, off = 0 } },
]

[flags.theme]
variants = ["light", "dark"]
default = "light"
[[flags.theme.rules]]
conditions = [{ attribute = "plan", op = "equals", value = "pro" }]
serve = "dark"
"""


def test_clean_project_exits_zero(tmp_path: Path) -> None:
    """Every key defined and read: exit 0; Jinja and Python reads both count."""
    root = _project(
        tmp_path,
        RAMPING,
        {
            "app.py": "import rampup\nif rampup.flags.enabled('search'):\n    pass\n",
            "templates/base.j2": "{% if g.flags.variant(\"theme\") == 'dark' %}dark{% endif %}\n",
            "templates/page.html": "{% load rampup_tags %}\n{% flag_value 'search' %}\n",
            ".venv/lib/x.py": "flags.enabled('not-scanned')\n",
        },
    )
    proc = refs(".", "--flags", "flags.toml", "--at", "2026-01-15", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: every key read is defined." in proc.stdout
    assert "Ready to remove" not in proc.stdout
    assert "theme  templates/base.j2:1" in proc.stdout
    assert "search  app.py:2, templates/page.html:2" in proc.stdout


def test_ramp_at_full_is_rolled_out(tmp_path: Path) -> None:
    """A ramp whose last step is 100 % one variant is ready to remove once that step began;
    before the ramp begins (or while steps remain) the flag is still in progress."""
    root = _project(tmp_path, RAMPING, {"app.py": "flags.enabled('search')\n"})
    _, later = refs_json(".", "--flags", "flags.toml", "--at", "2026-03-01", cwd=root)
    assert [(r["key"], r["variant"]) for r in later["rolled_out"]] == [("search", "on")]
    _, before = refs_json(".", "--flags", "flags.toml", "--at", "2025-12-01", cwd=root)
    # Before the ramp begins everyone gets "off", but the launch is scheduled: keep it.
    assert before["rolled_out"] == []
    _, during = refs_json(".", "--flags", "flags.toml", "--at", "2026-01-15", cwd=root)
    assert during["rolled_out"] == []
    assert [d["key"] for d in during["dead"]] == ["theme"]


def test_dynamic_and_broken_python(tmp_path: Path) -> None:
    """Non-literal keys are skipped; a file that is not Python 3 is scanned by pattern."""
    root = _project(
        tmp_path,
        RAMPING,
        {
            "a.py": "key = 'search'\nflags.enabled(key)\n",
            "b.py": "print 'py2'\nflags.variant('them')\n",
        },
    )
    code, data = refs_json(".", "--flags", "flags.toml", cwd=root)
    assert code == 1
    assert data["undefined"] == [
        {
            "key": "them",
            "did_you_mean": "theme",
            "refs": [{"file": "b.py", "line": 2, "kind": "code"}],
        }
    ]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    """A PATH that does not exist exits 2 with a message, not a traceback."""
    root = _project(tmp_path, RAMPING, {})
    proc = refs("nowhere", "--flags", "flags.toml", cwd=root)
    assert proc.returncode == 2
    assert "rampup: nowhere: no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_flag_file_exits_one(tmp_path: Path) -> None:
    """An invalid flag file is reported like `rampup check` does."""
    root = _project(tmp_path, "[flags.x]\ndefault = 'maybe'\n", {})
    proc = refs(".", "--flags", "flags.toml", cwd=root)
    assert proc.returncode == 1
    assert "not a variant of this flag" in proc.stderr


def test_a_scheduled_ramp_is_not_ready_to_remove(tmp_path: Path) -> None:
    """A flag that serves only its default today but ramps later is still in progress."""
    root = _project(
        tmp_path,
        "[flags.launch]\n[[flags.launch.rules]]\n"
        "ramp = [{ from = 2030-01-10, split = { on = 10, off = 90 } }]\n",
        {"app.py": 'from rampup import flags\nflags.enabled("launch")\n'},
    )
    code, report = refs_json("app.py", "--flags", "flags.toml", "--at", "2029-06-01", cwd=root)
    assert code == 0
    assert "launch" not in json.dumps(report["rolled_out"])
    assert "launch" not in json.dumps(report["killed"])
    assert report["refs"]  # the read was found, so the flag was judged


def test_keyword_key_is_a_read(tmp_path: Path) -> None:
    """flags.enabled(key="x") counts as a read of x (not a dead flag)."""
    root = _project(
        tmp_path,
        "[flags.eps]\n",
        {"app.py": 'from rampup import flags\nflags.enabled(key="eps")\n'},
    )
    _, report = refs_json("app.py", "--flags", "flags.toml", cwd=root)
    assert "eps" not in json.dumps(report["dead"])
    assert "eps" in json.dumps(report["refs"])
