"""`rampup import flagd FILE`, run as a subprocess: what maps is converted, the rest listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import rampup
from rampup import Subject

FLAGD: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "flags": {
        "banner": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]},
        },
        "color": {
            "state": "ENABLED",
            "variants": {"red": "#f00", "blue": "#00f", "green": "#0f0"},
            "defaultVariant": "red",
            "metadata": {"owner": "web"},
            "targeting": {
                "if": [
                    {"or": [{"$ref": "staff"}, {"in": [{"var": "country"}, ["NL", "BE"]]}]},
                    "blue",
                    {
                        "and": [
                            {">=": [{"var": "age"}, 18]},
                            {"sem_ver": [{"var": "app"}, ">=", "2.0.0"]},
                        ]
                    },
                    "green",
                    {"fractional": [{"var": "targetingKey"}, ["red", 25], ["blue", 75]]},
                ]
            },
        },
        "layout": {
            "state": "DISABLED",
            "variants": {"grid": {"cols": 3}, "list": {"cols": 1}},
            "defaultVariant": "grid",
        },
        "by-time": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{">": [{"var": "$flagd.timestamp"}, 1700000000]}, "on"]},
        },
        "thirds": {
            "state": "ENABLED",
            "variants": {"a": 1, "b": 2, "c": 3},
            "defaultVariant": "a",
            "targeting": {"fractional": [["a"], ["b"], ["c"]]},
        },
        "nothing": {"state": "ENABLED", "variants": {"a": None, "b": 1}, "defaultVariant": "b"},
    },
    "$evaluators": {"staff": {"in": ["@corp.com", {"var": "email"}]}},
}


def rampup_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m rampup ARGS`; it never prints a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=dict(os.environ),
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_converts_what_maps_and_lists_the_rest(tmp_path: Path) -> None:
    """The TOML holds the flags that map (valid for `rampup check`); the others are listed on
    stderr with their reason; exit 0."""
    (tmp_path / "flagd.json").write_text(json.dumps(FLAGD))
    proc = rampup_cli("import", "flagd", "flagd.json", "-o", "flags.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    snapshot = rampup.load(tmp_path / "flags.toml")
    assert sorted(snapshot.flags) == ["banner", "color", "layout"]
    assert 'not converted: by-time: var "$flagd.timestamp"' in proc.stderr
    assert "not converted: thirds: fractional weights" in proc.stderr
    assert "not converted: nothing: variant 'a' is null" in proc.stderr
    assert "3 flag(s) converted, 3 not converted" in proc.stderr
    assert "note: color: fractional converted with the same percentages" in proc.stderr
    check = rampup_cli("check", "flags.toml", cwd=tmp_path)
    assert check.returncode == 0, check.stderr


def test_converted_flags_decide_as_flagd_would(tmp_path: Path) -> None:
    """The converted targeting serves what flagd's JsonLogic would for each kind of subject."""
    (tmp_path / "flagd.json").write_text(json.dumps(FLAGD))
    proc = rampup_cli("import", "flagd", "flagd.json", cwd=tmp_path)
    (tmp_path / "flags.toml").write_text(proc.stdout)
    snap = rampup.load(tmp_path / "flags.toml")

    def served(key: str, subject: Subject) -> Any:
        return snap.evaluate(key, subject).variant

    assert served("banner", Subject("u", {"email": "a@example.com"})) == "on"
    assert served("banner", Subject("u", {"email": "a@else.com"})) == "off"
    assert served("color", Subject("u", {"email": "me@corp.com"})) == "blue"
    assert served("color", Subject("u", {"country": "BE"})) == "blue"
    assert served("color", Subject("u", {"age": 30, "app": "2.1.0"})) == "green"
    assert served("color", Subject("u", {"age": 30, "app": "1.9.0"})) in ("red", "blue")
    assert snap.flags["color"].metadata == {"owner": "web"}
    assert snap.flags["layout"].killed
    assert snap.evaluate("color", Subject("u", {"age": 1})).reason is rampup.Reason.SPLIT


def test_not_flagd_json_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a flagd document exits 1 with a message, no traceback."""
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text("[1, 2]")
    bad = rampup_cli("import", "flagd", "bad.json", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert "bad.json is not JSON" in bad.stderr
    other = rampup_cli("import", "flagd", "other.json", cwd=tmp_path)
    assert other.returncode == 1
    assert 'expected a flagd document {"flags": {...}}' in other.stderr
    missing = rampup_cli("import", "flagd", "missing.json", cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot read missing.json" in missing.stderr


def test_options_are_not_abbreviated(tmp_path: Path) -> None:
    """`--out` is not taken for `--output` (allow_abbrev=False): a usage error, exit 2."""
    (tmp_path / "flagd.json").write_text(json.dumps(FLAGD))
    proc = rampup_cli("import", "flagd", "flagd.json", "--out", "x.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert not (tmp_path / "x.toml").exists()
