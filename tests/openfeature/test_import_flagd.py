"""`rampup import flagd FILE`, run as a subprocess: what maps is converted, the rest listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rampup
from rampup import Subject
from rampup.cli.import_flagd import convert, to_toml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

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


BOOL = {"variants": {"on": True, "off": False}, "defaultVariant": "off"}


def _with(targeting: Any) -> dict[str, Any]:
    return {"flags": {"f": {**BOOL, "targeting": targeting}}}


def var(name: str) -> dict[str, Any]:
    return {"var": name}


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"flags": {"f": "x"}}, "not an object"),
        ({"flags": {"f": {"defaultVariant": "a"}}}, "no variants"),
        ({"flags": {"f": {"variants": {"a": 1, "b": 2}}}}, "no defaultVariant"),
        ({"flags": {"f": {**BOOL, "state": "PAUSED"}}}, "unknown state 'PAUSED'"),
        ({"flags": {"f": {**BOOL, "metadata": {"x": [1]}}}}, "metadata values must be"),
        ({"flags": {"f": {**BOOL, "defaultVariant": "nope"}}}, "not a variant of this flag"),
        (_with(["on"]), "is not an if/fractional/variant"),
        (_with({"cat": ["a"]}), "operator 'cat' at the top"),
        (_with({"if": [{"==": [var("a"), 1]}, {"if": []}]}), "a branch serving"),
        (_with({"fractional": []}), "fractional without buckets"),
        (_with({"fractional": [{"cat": [var("a")]}, ["on", 1]]}), "where a {'var': ...}"),
        (_with({"fractional": [[1, 2]]}), "fractional bucket"),
        (_with({"fractional": [["on", "x"]]}), "fractional weight"),
        (_with({"fractional": [["on", 0], ["off", 0]]}), "sum to 0"),
        (_with({"if": ["yes", "on"]}), 'condition "yes"'),
        (_with({"if": [{"$ref": "nope"}, "on"]}), "undefined evaluator"),
        (_with({"if": [{"!": var("a")}, "on"]}), "operator '!'"),
        (_with({"if": [{"==": [var("a"), var("b")]}, "on"]}), "one side must be a var"),
        (_with({"if": [{"==": [var("a"), [1]]}, "on"]}), "== against [1]"),
        (_with({"if": [{"<": [var("a"), "x"]}, "on"]}), "rampup compares numbers"),
        (_with({"if": [{"in": [var("a"), [{"x": 1}]]}, "on"]}), "in against"),
        (_with({"if": [{"==": [{"var": ["a", 1]}, 1]}, "on"]}), "var with a default"),
        (_with({"if": [{"==": [{"var": 3}, 1]}, "on"]}), "var 3"),
        (
            _with({"if": [{"or": [{"==": [var(f"a{i}"), 1]} for i in range(33)]}, "on"]}),
            "expanding to 33 rules",
        ),
    ],
)
def test_what_does_not_map_says_why(doc: dict[str, Any], why: str) -> None:
    """Each unmappable construct leaves the flag out, with a reason naming it."""
    flags, skipped, _ = convert(doc)
    assert flags == {}
    assert len(skipped) == 1
    assert why in skipped[0][1]


def test_more_that_maps() -> None:
    """A range (a < var < b), a value on the left, an else with a split, bucketing by an
    attribute, document-level entries listed, TOML keys quoted where needed."""
    doc = {
        "flags": {
            "f.x": {
                **BOOL,
                "targeting": {
                    "if": [
                        {"<": [18, var("age"), 65]},
                        "on",
                        {"==": ["gold", var("tier")]},
                        None,
                        {"<": [100, var("score")]},
                        "on",
                        {"fractional": [var("team"), ["on", 50], ["off", 50]]},
                    ]
                },
            }
        },
        "metadata": {"flagSetId": "x"},
    }
    flags, skipped, _ = convert(doc)
    assert skipped == [("[metadata]", "document-level entries are not converted")]
    rules = flags["f.x"]["rules"]
    assert rules[0]["conditions"] == [
        {"attribute": "age", "op": "gt", "value": 18},
        {"attribute": "age", "op": "lt", "value": 65},
    ]
    assert rules[1] == {
        "conditions": [{"attribute": "tier", "op": "equals", "value": "gold"}],
        "serve": "off",
    }
    assert rules[2]["conditions"] == [{"attribute": "score", "op": "gt", "value": 100}]
    assert rules[3] == {"bucket_by": "team", "split": {"on": 50, "off": 50}}
    text = to_toml(flags)
    assert '[flags."f.x"]' in text
    assert rampup.load(tomllib.loads(text)).flags["f.x"].rules[3].split is not None
    assert to_toml({}).endswith("flags = {}\n")
