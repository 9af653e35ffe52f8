"""The flag file: formats, every validation error (located, all at once), unreadable files."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import rampup
from rampup import ConfigError, Reason, Subject
from rampup.errors import Problem, RampupError

BASE_TOML = """\
version = 1

[segments.qa]
keys = ["qa-1"]

[flags.new-checkout]
description = "New checkout"

[[flags.new-checkout.rules]]
segments = ["qa"]
serve = "on"

[[flags.new-checkout.rules]]
split = { on = 10, off = 90 }
"""


def problems_of(source: Any) -> tuple[Problem, ...]:
    """Load ``source`` expecting a ConfigError; its problems."""
    with pytest.raises(ConfigError) as info:
        rampup.load(source)
    return info.value.problems


def one_problem(source: Any) -> Problem:
    """Load ``source`` expecting exactly one problem."""
    problems = problems_of(source)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def line_of(text: str, marker: str) -> int:
    """The 1-based line of ``text`` that contains ``marker`` (exactly one must)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def flag(**fields: Any) -> dict[str, Any]:
    """A mapping holding one flag ``f`` with ``fields`` (and segment ``qa``)."""
    return {"segments": {"qa": {"keys": ["qa-1"]}}, "flags": {"f": fields}}


def rule(**fields: Any) -> dict[str, Any]:
    """A mapping holding one boolean flag ``f`` with one rule of ``fields``."""
    return flag(rules=[fields])


def cond(**fields: Any) -> dict[str, Any]:
    """A mapping holding one rule with one condition of ``fields``, serving on."""
    return rule(conditions=[fields], serve="on")


def step_ramp(*steps: dict[str, Any]) -> dict[str, Any]:
    return rule(ramp=list(steps))


# -- valid files --------------------------------------------------------------------------------


def test_example_file_loads(example: rampup.Snapshot) -> None:
    """The bundled example tells the whole story and is valid."""
    assert set(example.flags) == {
        "new-checkout",
        "checkout-button",
        "recommendations",
        "admin-panel",
        "dark-mode",
    }
    assert set(example.segments) == {"qa", "staff", "beta"}
    assert example.flags["recommendations"].killed
    assert not example.flags["admin-panel"].overridable


def test_same_flags_from_toml_json_yaml_and_mapping(tmp_path: Path) -> None:
    """TOML, JSON, YAML and an in-memory mapping describing one flag set load identically."""
    data = {
        "version": 1,
        "segments": {"qa": {"keys": ["qa-1"]}},
        "flags": {
            "new-checkout": {
                "description": "New checkout",
                "rules": [{"segments": ["qa"], "serve": "on"}, {"split": {"on": 10, "off": 90}}],
            }
        },
    }
    yaml = pytest.importorskip("yaml")
    snaps = [
        rampup.load(write(tmp_path, "f.toml", BASE_TOML)),
        rampup.load(write(tmp_path, "f.json", json.dumps(data))),
        rampup.load(write(tmp_path, "f.yaml", yaml.safe_dump(data, sort_keys=False))),
        rampup.load(write(tmp_path, "f.yml", yaml.safe_dump(data, sort_keys=False))),
        rampup.load(data),
    ]
    for snap in snaps[1:]:
        assert snap.flags == snaps[0].flags
        assert snap.segments == snaps[0].segments
    assert snaps[0].origin.endswith("f.toml")
    assert snaps[-1].origin == "<mapping>"


def test_load_accepts_str_and_pathlike(tmp_path: Path) -> None:
    """A path may be given as str or os.PathLike; the suffix is matched case-insensitively."""
    path = write(tmp_path, "FLAGS.TOML", BASE_TOML)
    assert len(rampup.load(str(path))) == 1
    assert len(rampup.load(path)) == 1


def test_boolean_flag_defaults() -> None:
    """A flag without variants is boolean: on/off serving True/False, default off, overridable."""
    snap = rampup.load({"flags": {"f": {}}})
    f = snap.flags["f"]
    assert [(v.name, v.value) for v in f.variants] == [("on", True), ("off", False)]
    assert f.is_boolean
    assert (f.default, f.killed, f.overridable, f.salt) == ("off", False, True, "f")
    d = snap.evaluate("f", Subject("u"))
    assert (d.variant, d.value, d.reason, d.enabled) == ("off", False, Reason.DEFAULT, False)


def test_variants_as_list_and_as_table() -> None:
    """Variants are a list of names (value = name) or a table of name = value."""
    snap = rampup.load(
        {
            "flags": {
                "listed": {"variants": ["a", "b"], "default": "b"},
                "table": {"variants": {"small": 10, "big": [1, 2]}, "default": "big"},
            }
        }
    )
    assert snap.evaluate("listed", Subject("u")).value == "b"
    assert snap.evaluate("table", Subject("u")).value == [1, 2]
    assert not snap.flags["table"].is_boolean


def test_empty_flags_table_is_valid() -> None:
    """A file may define no flags yet (flags = {})."""
    assert len(rampup.load({"flags": {}})) == 0


def test_ramp_dates_parse(tmp_path: Path) -> None:
    """Ramp steps take TOML datetimes, offset strings, Z strings, and bare dates (midnight UTC)."""
    text = """\
[[flags.f.rules]]
ramp = [
  { from = 2026-12-01T09:00:00Z, split = { on = 1, off = 99 } },
  { from = 2026-12-02T09:00:00+02:00, split = { on = 2, off = 98 } },
  { from = "2026-12-03T10:00:00Z", split = { on = 3, off = 97 } },
  { from = 2026-12-04, split = { on = 4, off = 96 } },
  { from = "2026-12-05", split = { on = 5, off = 95 } },
]
"""
    snap = rampup.load(write(tmp_path, "f.toml", text))
    split = snap.flags["f"].rules[0].split
    assert split is not None
    utc = timezone.utc
    assert [s.start.astimezone(utc) for s in split.ramp] == [
        datetime(2026, 12, 1, 9, tzinfo=utc),
        datetime(2026, 12, 2, 7, tzinfo=utc),
        datetime(2026, 12, 3, 10, tzinfo=utc),
        datetime(2026, 12, 4, tzinfo=utc),
        datetime(2026, 12, 5, tzinfo=utc),
    ]


def test_weights_are_basis_points() -> None:
    """Weights are percentages with up to two decimals, stored in hundredths of a percent."""
    snap = rampup.load(rule(split={"on": 33.33, "off": 66.67}))
    split = snap.flags["f"].rules[0].split
    assert split is not None
    assert split.weights == (("on", 3333), ("off", 6667))


def test_config_error_is_value_error() -> None:
    """ConfigError is a RampupError and a ValueError, and its message lists each problem."""
    with pytest.raises(ValueError, match="1 problem in flag configuration") as info:
        rampup.load({"flags": {"f": {"rulez": []}}})
    assert isinstance(info.value, RampupError)
    assert "flags.f.rulez: unknown field (hint: did you mean 'rules'?)" in str(info.value)


# -- every validation error, one at a time ------------------------------------------------------

CASES: list[tuple[str, Any, str, str, str]] = [
    # (id, source, where, message fragment, hint fragment)
    ("top-typo", {"flags": {}, "flagz": {}}, "flagz", "unknown field", "did you mean 'flags'?"),
    ("no-flags", {"segments": {}}, "flags", "missing", "add a [flags] table"),
    ("version", {"version": 2, "flags": {}}, "version", "unsupported version 2", "version 1"),
    ("flags-list", {"flags": []}, "flags", "expects a table of flags, got list", ""),
    ("segments-list", {"flags": {}, "segments": []}, "segments", "a table of segments", ""),
    ("flag-typo", flag(rulez=[]), "flags.f.rulez", "unknown field", "did you mean 'rules'?"),
    ("flag-typo2", flag(descripton="x"), "flags.f.descripton", "unknown field", "'description'"),
    ("flag-not-table", {"flags": {"f": "on"}}, "flags.f", "expects a table, got str", ""),
    ("flag-key", {"flags": {"bad key!": {}}}, "flags.'bad key!'", "invalid flag key", "letters"),
    ("killed-type", flag(killed="yes"), "flags.f.killed", "expects true or false, got str", ""),
    ("overridable-type", flag(overridable=1), "flags.f.overridable", "expects true or false", ""),
    ("description-type", flag(description=5), "flags.f.description", "expects a string", ""),
    ("salt-type", flag(salt=5), "flags.f.salt", "expects a string, got int", ""),
    ("rules-type", flag(rules={"serve": "on"}), "flags.f.rules", "expects a list of rules", ""),
    ("rule-type", flag(rules=["on"]), "flags.f.rules[0]", "expects a table, got str", ""),
    (
        "default-not-variant",
        flag(variants=["a", "b"], default="c"),
        "flags.f.default",
        "'c' is not a variant",
        "variants: a, b",
    ),
    ("default-bool-flag", flag(default="of"), "flags.f.default", "'of' is not a variant", "off"),
    ("default-missing", flag(variants=["a", "b"]), "flags.f.default", "missing", "name the"),
    ("default-type", flag(variants=["a", "b"], default=1), "flags.f.default", "1 is not a", ""),
    ("variants-type", flag(variants=5, default="a"), "flags.f.variants", "expects a list", ""),
    ("variants-one", flag(variants=["a"], default="a"), "flags.f.variants", "at least two", ""),
    ("variants-dup", flag(variants=["a", "a"], default="a"), "flags.f.variants", "duplicate", ""),
    ("variant-name", flag(variants=["a", "b c"], default="a"), "flags.f.variants", "'b c'", ""),
    ("rule-typo", rule(serve="on", bucketby="x"), ".rules[0].bucketby", "", "'bucket_by'"),
    ("rule-none", rule(description="x"), "flags.f.rules[0]", "exactly one of serve", ""),
    (
        "rule-two",
        rule(serve="on", split={"on": 50, "off": 50}),
        "flags.f.rules[0]",
        "(has serve, split)",
        "",
    ),
    ("serve-variant", rule(serve="maybe"), "flags.f.rules[0].serve", "'maybe' is not a", "off, on"),
    ("serve-type", rule(serve=True), "flags.f.rules[0].serve", "True is not a variant", ""),
    (
        "undefined-segment",
        rule(segments=["qaa"], serve="on"),
        "flags.f.rules[0].segments",
        "undefined segment 'qaa'",
        "did you mean 'qa'?",
    ),
    (
        "undefined-segment-far",
        rule(segments=["zzz"], serve="on"),
        "flags.f.rules[0].segments",
        "undefined segment 'zzz'",
        "define it under [segments]",
    ),
    ("segments-type", rule(segments=5, serve="on"), "flags.f.rules[0].segments", "a list", ""),
    (
        "segments-unhashable",
        rule(segments=[{"name": "qa"}], serve="on"),
        "flags.f.rules[0].segments",
        "undefined segment",
        "",
    ),
    (
        "bucket-by-type",
        rule(split={"on": 1, "off": 99}, bucket_by=5),
        ".bucket_by",
        "attribute",
        "",
    ),
    ("split-sum", rule(split={"on": 60, "off": 50}), "flags.f.rules[0].split", "sum to 110", ""),
    ("split-sum-low", rule(split={"on": 5}), "flags.f.rules[0].split", "sum to 5, not 100", ""),
    ("split-fine", rule(split={"on": 0.005, "off": 99.995}), ".split", "finer than 0.01 %", ""),
    ("split-negative", rule(split={"on": -5, "off": 105}), ".split", "from 0 to 100", ""),
    ("split-string", rule(split={"on": "5", "off": 95}), ".split", "from 0 to 100, got '5'", ""),
    ("split-bool", rule(split={"on": True, "off": 99}), ".split", "from 0 to 100, got True", ""),
    ("split-nan", rule(split={"on": float("nan"), "off": 100}), ".split", "got nan", ""),
    ("split-empty", rule(split={}), "flags.f.rules[0].split", "expects a table of variant", ""),
    ("split-type", rule(split=[50, 50]), "flags.f.rules[0].split", "expects a table", ""),
    (
        "split-variant",
        rule(split={"on": 50, "maybe": 50}),
        "flags.f.rules[0].split",
        "'maybe' is not a variant",
        "variants: off, on",
    ),
    ("cond-typo", cond(attribute="a", op="exists", values=1), ".conditions[0].values", "", "value"),
    ("cond-type", rule(conditions=[5], serve="on"), ".conditions[0]", "expects a table", ""),
    (
        "conds-type",
        rule(conditions={"a": 1}, serve="on"),
        ".conditions",
        "a list of conditions",
        "",
    ),
    ("attr-type", cond(attribute=5, op="exists"), ".conditions[0].attribute", "attribute name", ""),
    (
        "unknown-op",
        cond(attribute="a", op="startswith", value="x"),
        "flags.f.rules[0].conditions[0].op",
        "unknown operator 'startswith'",
        "did you mean 'starts_with'?",
    ),
    ("unknown-op-far", cond(attribute="a", op="~~", value="x"), ".op", "'~~'", "operators: equals"),
    ("missing-op", cond(attribute="a", value="x"), ".op", "unknown operator None", ""),
    ("missing-value", cond(attribute="a", op="equals"), ".conditions[0].value", "missing", "needs"),
    (
        "bad-regex",
        cond(attribute="ua", op="matches", value="(["),
        "flags.f.rules[0].conditions[0].value",
        "matches is not a valid regular expression",
        "",
    ),
    (
        "segment-typo",
        {"flags": {}, "segments": {"s": {"keys": ["a"], "descr": ""}}},
        ".descr",
        "",
        "",
    ),
    ("segment-empty", {"flags": {}, "segments": {"s": {}}}, "segments.s", "matches nobody", "keys"),
    ("segment-type", {"flags": {}, "segments": {"s": []}}, "segments.s", "expects a table", ""),
    (
        "segment-keys",
        {"flags": {}, "segments": {"s": {"keys": "a"}}},
        "segments.s.keys",
        "list",
        "",
    ),
    (
        "segment-key",
        {"flags": {}, "segments": {"s": {"keys": [1]}}},
        "segments.s.keys[0]",
        "str",
        "",
    ),
    ("segment-name", {"flags": {}, "segments": {"a b": {"keys": ["x"]}}}, "segments.'a b'", "", ""),
    (
        "segment-cond",
        {"flags": {}, "segments": {"s": {"conditions": [{"attribute": "a", "op": "eq"}]}}},
        "segments.s.conditions[0].op",
        "unknown operator 'eq'",
        "",
    ),
    ("ramp-type", rule(ramp={"on": 5}), "flags.f.rules[0].ramp", "a list of steps", ""),
    ("ramp-empty", rule(ramp=[]), "flags.f.rules[0].ramp", "at least one step", ""),
    ("step-type", rule(ramp=["x"]), "flags.f.rules[0].ramp[0]", "expects a table", ""),
    (
        "step-typo",
        step_ramp({"from": "2026-12-01", "split": {"on": 1, "off": 99}, "to": "2026-12-02"}),
        "flags.f.rules[0].ramp[0].to",
        "unknown field",
        "",
    ),
    (
        "step-no-from",
        step_ramp({"split": {"on": 1, "off": 99}}),
        "flags.f.rules[0].ramp[0].from",
        "missing",
        "2026-12-01T09:00:00Z",
    ),
    (
        "step-no-split",
        step_ramp({"from": "2026-12-01"}),
        "flags.f.rules[0].ramp[0].split",
        "missing",
        "",
    ),
    (
        "bad-date",
        step_ramp({"from": "next tuesday", "split": {"on": 1, "off": 99}}),
        "flags.f.rules[0].ramp[0].from",
        "'next tuesday' is not an ISO 8601 date",
        "2026-12-01T09:00:00Z",
    ),
    (
        "impossible-date",
        step_ramp({"from": "2026-02-30", "split": {"on": 1, "off": 99}}),
        ".ramp[0].from",
        "not an ISO 8601",
        "",
    ),
    (
        "date-type",
        step_ramp({"from": 20261201, "split": {"on": 1, "off": 99}}),
        ".from",
        "date",
        "",
    ),
    (
        "naive-string",
        step_ramp({"from": "2026-12-01T09:00:00", "split": {"on": 1, "off": 99}}),
        "flags.f.rules[0].ramp[0].from",
        "has no time zone",
        "add Z for UTC",
    ),
    (
        "naive-datetime",
        step_ramp({"from": datetime(2026, 12, 1, 9), "split": {"on": 1, "off": 99}}),
        ".ramp[0].from",
        "has no time zone",
        "",
    ),
    (
        "non-increasing",
        step_ramp(
            {"from": "2026-12-03", "split": {"on": 10, "off": 90}},
            {"from": "2026-12-01", "split": {"on": 20, "off": 80}},
        ),
        "flags.f.rules[0].ramp[1].from",
        "is not after the previous step",
        "time order",
    ),
    (
        "same-time",
        step_ramp(
            {"from": "2026-12-01T00:00:00Z", "split": {"on": 10, "off": 90}},
            {"from": "2026-12-01", "split": {"on": 20, "off": 80}},
        ),
        ".ramp[1].from",
        "not after",
        "",
    ),
    (
        "step-weights",
        step_ramp({"from": "2026-12-01", "split": {"on": 10, "off": 80}}),
        "flags.f.rules[0].ramp[0].split",
        "sum to 90",
        "",
    ),
]


@pytest.mark.parametrize(
    ("source", "where", "message", "hint"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validation_error(source: Any, where: str, message: str, hint: str) -> None:
    """Each kind of invalid input gives exactly one located problem with a useful message."""
    p = one_problem(source)
    assert p.file == "<mapping>"
    assert p.line is None  # mappings have no lines
    if where.startswith("."):
        assert p.where.endswith(where), p
    else:
        assert p.where == where, p
    assert message in p.message, p
    assert hint in p.hint, p


def test_all_problems_at_once_with_lines(tmp_path: Path) -> None:
    """One ConfigError lists every problem of a TOML file, each with its field and true line."""
    text = """\
version = 1

[segments.qa]
keys = ["qa-1"]

[segments.empty]  # P-empty
description = "nothing"

[flags.alpha]
rulez = []  # P-rulez
default = "of"  # P-default

[[flags.alpha.rules]]
segments = ["qaa"]  # P-segment
serve = "on"

[[flags.alpha.rules]]
split = { on = 60, off = 50 }  # P-sum

[[flags.alpha.rules]]
conditions = [
  { attribute = "email", op = "ends_with", value = "@x.com" },
  { attribute = "email", op = "endswith", value = "@x.com" },  # P-op
]
serve = "on"

[flags.beta]
variants = ["a", "b"]
default = "a"

[[flags.beta.rules]]
serve = "c"  # P-serve

[[flags.beta.rules]]
split = { a = 50.005, b = 49.995 }  # P-fine

[[flags.beta.rules]]
conditions = [{ attribute = "ua", op = "matches", value = "([" }]  # P-regex
serve = "a"

[[flags.beta.rules]]
ramp = [
  { from = 2026-12-03T00:00:00Z, split = { a = 10, b = 90 } },
  { from = 2026-12-01, split = { a = 20, b = 80 } },  # P-order
  { from = "next tuesday", split = { a = 30, b = 70 } },  # P-date
  { from = 2026-12-09T09:00:00, split = { a = 40, b = 60 } },  # P-naive
]

[flags.gamma]
killed = "yes"  # P-killed
overridable = 1  # P-overridable
"""
    path = write(tmp_path, "flags.toml", text)
    expected = {
        "segments.empty": ("P-empty", "matches nobody"),
        "flags.alpha.rulez": ("P-rulez", "unknown field"),
        "flags.alpha.default": ("P-default", "'of' is not a variant"),
        "flags.alpha.rules[0].segments": ("P-segment", "undefined segment 'qaa'"),
        "flags.alpha.rules[1].split": ("P-sum", "sum to 110"),
        "flags.alpha.rules[2].conditions[1].op": ("P-op", "unknown operator 'endswith'"),
        "flags.beta.rules[0].serve": ("P-serve", "'c' is not a variant"),
        "flags.beta.rules[1].split": ("P-fine", "finer than 0.01 %"),
        "flags.beta.rules[2].conditions[0].value": ("P-regex", "not a valid regular expression"),
        "flags.beta.rules[3].ramp[1].from": ("P-order", "not after the previous step"),
        "flags.beta.rules[3].ramp[2].from": ("P-date", "not an ISO 8601"),
        "flags.beta.rules[3].ramp[3].from": ("P-naive", "has no time zone"),
        "flags.gamma.killed": ("P-killed", "expects true or false"),
        "flags.gamma.overridable": ("P-overridable", "expects true or false"),
    }
    problems = problems_of(path)
    assert sorted(p.where for p in problems) == sorted(expected)
    for p in problems:
        marker, message = expected[p.where]
        assert p.file == str(path)
        assert message in p.message, p
        assert p.line == line_of(text, marker), p
    hints = {p.where: p.hint for p in problems}
    assert hints["flags.alpha.rulez"] == "did you mean 'rules'?"
    assert hints["flags.alpha.rules[2].conditions[1].op"] == "did you mean 'ends_with'?"
    assert hints["flags.alpha.rules[0].segments"] == "did you mean 'qa'?"
    # The message of the exception carries every problem as file:line: where: message.
    with pytest.raises(ConfigError) as info:
        rampup.load(path)
    message = str(info.value)
    assert message.startswith("14 problems in flag configuration:")
    assert f"{path}:{line_of(text, 'P-naive')}: flags.beta.rules[3].ramp[3].from" in message


def test_json_problems_have_true_lines(tmp_path: Path) -> None:
    """Problems in a JSON file point at the line of the field, also inside lists."""
    text = """\
{
  "flags": {
    "alpha": {
      "rules": [
        {"split": {"on": 50, "off": 50}},
        {"split": {"on": 60, "off": 50}},
        {"serve": "on", "descriptio": "x"}
      ]
    },
    "beta": {
      "killed": "no",
      "rules": [
        {"serve": "on"},
        {"conditions": [
          {"attribute": "a", "op": "equals", "value": 1},
          {"attribute": "a", "op": "equalz", "value": 1}
        ], "serve": "on"}
      ]
    }
  }
}
"""
    path = write(tmp_path, "flags.json", text)
    lines = {p.where: p.line for p in problems_of(path)}
    assert lines == {
        "flags.alpha.rules[1].split": 6,
        "flags.alpha.rules[2].descriptio": 7,
        "flags.beta.killed": 11,
        "flags.beta.rules[1].conditions[1].op": 16,
    }


def test_yaml_problems_have_lines(tmp_path: Path) -> None:
    """Problems in a YAML file point at the line of the field, inside block sequences too."""
    pytest.importorskip("yaml")
    text = """\
flags:
  alpha:
    rules:
      - split: {on: 50, off: 50}
      - serve: "on"
        conditions:
          - {attribute: a, op: equals, value: 1}
          - attribute: a
            op: equalz
            value: 1
  beta:
    killed: "no"
"""
    path = write(tmp_path, "flags.yaml", text)
    lines = {p.where: p.line for p in problems_of(path)}
    assert lines == {"flags.alpha.rules[1].conditions[1].op": 9, "flags.beta.killed": 12}


def test_problem_in_the_example_ramp_points_at_its_step(tmp_path: Path, example_path: Path) -> None:
    """A broken step of the example's ramp is reported on that step's line."""
    text = example_path.read_text(encoding="utf-8")
    broken = text.replace("{ from = 2026-12-07,", "{ from = 2026-12-02,")
    assert broken != text
    (p,) = problems_of(write(tmp_path, "flags.toml", broken))
    assert p.where == "flags.new-checkout.rules[2].ramp[2].from"
    assert p.line == line_of(broken, "from = 2026-12-02,")


# -- files that are not flag files --------------------------------------------------------------


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path that does not exist: 'file not found' with the absolute path tried."""
    monkeypatch.chdir(tmp_path)
    p = one_problem("nope.toml")
    assert p.file == "nope.toml"
    assert p.message == f"file not found (looked for {tmp_path / 'nope.toml'})"


def test_directory(tmp_path: Path) -> None:
    """A directory, with or without a flag-file suffix, is reported as a directory."""
    (tmp_path / "flags.toml").mkdir()
    assert "is a directory" in one_problem(tmp_path / "flags.toml").message
    assert "is a directory" in one_problem(tmp_path).message


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission: 'cannot read file' and the OS reason."""
    path = write(tmp_path, "flags.toml", BASE_TOML)
    path.chmod(0)
    try:
        p = one_problem(path)
    finally:
        path.chmod(0o600)
    assert "cannot read file" in p.message


@pytest.mark.parametrize("content", ["", "   \n\n\t\n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    """An empty (or blank) file: 'file is empty' with a hint."""
    p = one_problem(write(tmp_path, "flags.toml", content))
    assert p.message == "file is empty"
    assert "`flags` table" in p.hint


@pytest.mark.parametrize(("name", "text"), [("top.json", "[1, 2]"), ("top.yaml", "just text")])
def test_top_level_not_a_table(tmp_path: Path, name: str, text: str) -> None:
    """A file whose top level is not a table says what it expects."""
    pytest.importorskip("yaml")
    p = one_problem(write(tmp_path, name, text))
    assert p.where == ""
    assert "expects a table with [flags] and [segments]" in p.message


def test_yaml_on_off_are_variant_names(tmp_path: Path) -> None:
    """In YAML, bare on/off are the variants on/off (not YAML 1.1 booleans); true/false stay."""
    pytest.importorskip("yaml")
    text = "flags:\n  f:\n    default: on\n    killed: false\n"
    text += "    rules:\n      - split: {on: 5, off: 95}\n"
    snap = rampup.load(write(tmp_path, "flags.yaml", text))
    assert snap.flags["f"].default == "on"
    split = snap.flags["f"].rules[0].split
    assert split is not None
    assert split.weights == (("on", 500), ("off", 9500))
    p = one_problem(write(tmp_path, "bad.yaml", "flags:\n  f:\n    killed: yes\n"))
    assert (p.where, p.line) == ("flags.f.killed", 3)
    assert "expects true or false, got str 'yes'" in p.message


def test_unsupported_suffix(tmp_path: Path) -> None:
    """A file type rampup does not read is named, with the ones it does."""
    p = one_problem(write(tmp_path, "flags.ini", "[flags]\n"))
    assert "unsupported file type '.ini'" in p.message
    assert ".toml" in p.hint


def test_nul_bytes(tmp_path: Path) -> None:
    """A file with NUL bytes is not a text flag file."""
    p = one_problem(write(tmp_path, "flags.toml", b"[flags]\n\x00\x00"))
    assert "NUL bytes" in p.message


def test_binary_garbage(tmp_path: Path) -> None:
    """Random binary data gives one clear problem, not a parser traceback."""
    garbage = bytes((i * 197 + 11) % 256 for i in range(4096))
    p = one_problem(write(tmp_path, "flags.toml", garbage))
    assert "NUL bytes" in p.message or "not UTF-8" in p.message


def test_not_utf8(tmp_path: Path) -> None:
    """Latin-1 text is reported as not UTF-8, with the line of the bad byte."""
    text = '[flags.f]\ndescription = "caf\xe9"\n'.encode("latin-1")
    p = one_problem(write(tmp_path, "flags.toml", text))
    assert "not UTF-8" in p.message
    assert p.line == 2


@pytest.mark.parametrize("size", [10 * 1024 * 1024 + 1, 50 * 1024 * 1024])
def test_too_large(tmp_path: Path, size: int) -> None:
    """A file over 10 MB is refused before it is read (written sparse here)."""
    path = tmp_path / "flags.json"
    with path.open("wb") as fh:
        fh.truncate(size)
    p = one_problem(path)
    assert f"{size:,} bytes" in p.message
    assert "limit is 10,485,760" in p.message


def test_invalid_toml_has_line(tmp_path: Path) -> None:
    """A TOML syntax error names TOML and the line."""
    text = '[flags.f]\ndescription = "ok"\nkilled = = true\n'
    p = one_problem(write(tmp_path, "flags.toml", text))
    assert p.message.startswith("invalid TOML")
    assert p.line == 3


def test_invalid_json_has_line(tmp_path: Path) -> None:
    """A JSON syntax error names JSON and the line."""
    text = '{\n  "flags": {\n    "f": {,}\n  }\n}\n'
    p = one_problem(write(tmp_path, "flags.json", text))
    assert p.message.startswith("invalid JSON")
    assert p.line == 3


def test_invalid_yaml_has_line(tmp_path: Path) -> None:
    """A YAML syntax error names YAML and the line."""
    pytest.importorskip("yaml")
    text = "flags:\n  f:\n    description: [unclosed\n  g: {}\n"
    p = one_problem(write(tmp_path, "flags.yaml", text))
    assert p.message.startswith("invalid YAML")
    assert p.line is not None
    assert 3 <= p.line <= 4


def test_duplicate_json_key(tmp_path: Path) -> None:
    """JSON would silently keep the last duplicate; rampup reports it with its line."""
    text = '{\n  "flags": {\n    "f": {},\n    "g": {},\n    "f": {"killed": true}\n  }\n}\n'
    p = one_problem(write(tmp_path, "flags.json", text))
    assert p.message == "invalid JSON: duplicate key 'f'"
    assert p.line == 5


def test_duplicate_toml_key(tmp_path: Path) -> None:
    """TOML itself forbids duplicate keys: reported as invalid TOML with the line."""
    text = "[flags.f]\nkilled = true\nkilled = false\n"
    p = one_problem(write(tmp_path, "flags.toml", text))
    assert p.message.startswith("invalid TOML")
    assert p.line == 3


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("big.json", '{"flags": {}, "version": ' + "1" * 5000 + "}"),
        ("big.toml", "version = " + "1" * 5000 + "\n[flags]\n"),
        ("big.yaml", "version: " + "1" * 5000 + "\nflags: {}\n"),
        ("date.yaml", "flags:\n  f:\n    rules:\n      - ramp: [{from: 2026-13-01}]\n"),
        ("deep.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n"),
        ("deep.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
    ],
)
def test_values_parsers_cannot_build(tmp_path: Path, name: str, text: str) -> None:
    """Huge integers, impossible YAML dates and deep nesting are ConfigErrors, not crashes."""
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    p = one_problem(write(tmp_path, name, text))
    assert p.message.startswith("invalid "), p


def test_config_error_lists_file_problem_as_str(tmp_path: Path) -> None:
    """str(Problem) reads as file:line: where: message (hint: ...)."""
    p = Problem("f.toml", "flags.x.rulez", "unknown field", "did you mean 'rules'?", 7)
    assert str(p) == "f.toml:7: flags.x.rulez: unknown field (hint: did you mean 'rules'?)"
    assert str(Problem("f.toml", "", "file is empty")) == "f.toml: file is empty"


# -- property-based: valid files load, mutated files fail cleanly -------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.from_regex(r"\A[a-z][a-z0-9_-]{0,8}\Z")
_scalars = st.one_of(st.text(max_size=8), st.integers(-1000, 1000), st.booleans())
_CONDITIONS = st.sampled_from(
    [
        {"attribute": "email", "op": "ends_with", "value": "@example.com"},
        {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
        {"attribute": "age", "op": "gte", "value": 18},
        {"attribute": "app", "op": "semver_lt", "value": "2.0.0-rc.1"},
        {"attribute": "ua", "op": "matches", "value": "^Mozilla"},
        {"attribute": "beta", "op": "exists"},
        {"attribute": "key", "op": "not_equals", "value": "admin"},
    ]
)


@st.composite
def _weights(draw: st.DrawFn, names: list[str]) -> dict[str, float]:
    cuts = sorted(
        draw(st.lists(st.integers(0, 10_000), min_size=len(names) - 1, max_size=len(names) - 1))
    )
    bounds = [0, *cuts, 10_000]
    picked = draw(st.permutations(names))
    return {n: (bounds[i + 1] - bounds[i]) / 100 for i, n in enumerate(picked)}


@st.composite
def valid_files(draw: st.DrawFn) -> dict[str, Any]:
    segments: dict[str, Any] = {}
    for name in draw(st.lists(_names, max_size=3, unique=True)):
        if draw(st.booleans()):
            segments[name] = {"keys": draw(st.lists(st.text(max_size=6), min_size=1, max_size=3))}
        else:
            segments[name] = {"conditions": draw(st.lists(_CONDITIONS, min_size=1, max_size=2))}
    flags: dict[str, Any] = {}
    for key in draw(st.lists(_names, min_size=1, max_size=4, unique=True)):
        f: dict[str, Any] = {}
        if draw(st.booleans()):
            names = ["on", "off"]
        else:
            names = draw(st.lists(_names, min_size=2, max_size=4, unique=True))
            if draw(st.booleans()):
                f["variants"] = names
            else:
                f["variants"] = {n: draw(_scalars) for n in names}
        if "variants" in f or draw(st.booleans()):
            f["default"] = draw(st.sampled_from(names))
        for opt in ("killed", "overridable"):
            if draw(st.booleans()):
                f[opt] = draw(st.booleans())
        rules = []
        for _ in range(draw(st.integers(0, 3))):
            r: dict[str, Any] = {}
            if draw(st.booleans()) and segments:
                r["segments"] = draw(st.lists(st.sampled_from(sorted(segments)), max_size=2))
            if draw(st.booleans()):
                r["conditions"] = draw(st.lists(_CONDITIONS, max_size=2))
            kind = draw(st.sampled_from(["serve", "split", "ramp"]))
            if kind == "serve":
                r["serve"] = draw(st.sampled_from(names))
            elif kind == "split":
                r["split"] = draw(_weights(names))
                if draw(st.booleans()):
                    r["bucket_by"] = "org"
            else:
                days = sorted(
                    draw(st.lists(st.integers(1, 28), min_size=1, max_size=3, unique=True))
                )
                r["ramp"] = [
                    {"from": f"2026-12-{d:02d}T09:00:00Z", "split": draw(_weights(names))}
                    for d in days
                ]
            rules.append(r)
        if rules:
            f["rules"] = rules
        flags[key] = f
    return {"version": 1, "segments": segments, "flags": flags}


_SUBJECTS = [
    Subject("u1", {"email": "a@example.com", "age": 30, "org": "acme", "beta": True}),
    Subject("u2", {"plan": "pro", "app": "1.9.0", "ua": "Mozilla/5.0"}),
    Subject(None),
]
_REASONS = {Reason.DEFAULT, Reason.RULE_MATCH, Reason.SPLIT, Reason.KILLED}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=valid_files())
def test_random_valid_files_load(data: dict[str, Any]) -> None:
    """Any valid mapping loads, also as JSON text, and every decision serves one of its variants."""
    snap = rampup.load(copy.deepcopy(data))
    assert set(snap.flags) == set(data["flags"])
    assert rampup._files.parse(json.dumps(data), ".json", "x.json") == (data, None)
    now = datetime(2026, 12, 15, tzinfo=timezone.utc).timestamp()
    for key, f in snap.flags.items():
        names = {v.name for v in f.variants}
        for subject in _SUBJECTS:
            d = snap.evaluate(key, subject, now)
            assert d.variant in names
            assert d.reason in _REASONS


GARBAGE: list[Any] = [
    None,
    5,
    -1,
    2.5,
    True,
    "",
    "x" * 300,
    [],
    {},
    [[]],
    [{}],
    {"": None},
    "([",
    "2026-99-99",
    float("nan"),
    float("inf"),
    {"nested": {"deeper": []}},
]
_SCHEMA_ROLES = {"root", "flag", "rule", "condition", "segment", "step"}
_REQUIRED = {
    "rule": ("serve", "split", "ramp"),
    "condition": ("attribute", "op"),
    "step": ("from", "split"),
    "root": ("flags",),
}


def _roles(data: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """(path, role) of every schema table in a valid mapping."""
    out: list[tuple[list[Any], str]] = [([], "root")]
    for name, seg in data["segments"].items():
        out.append((["segments", name], "segment"))
        for j in range(len(seg.get("conditions", []))):
            out.append((["segments", name, "conditions", j], "condition"))
    for key, f in data["flags"].items():
        out.append((["flags", key], "flag"))
        for i, r in enumerate(f.get("rules", [])):
            out.append((["flags", key, "rules", i], "rule"))
            for j in range(len(r.get("conditions", []))):
                out.append((["flags", key, "rules", i, "conditions", j], "condition"))
            for j in range(len(r.get("ramp", []))):
                out.append((["flags", key, "rules", i, "ramp", j], "step"))
    return out


def _nodes(value: Any, path: list[Any]) -> list[list[Any]]:
    """Every path below ``value``, except the free-form values of a variants table."""
    out = []
    if isinstance(value, dict):
        if path[-1:] == ["variants"]:
            return []
        for k, v in value.items():
            out.append([*path, k])
            out.extend(_nodes(v, [*path, k]))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append([*path, i])
            out.extend(_nodes(v, [*path, i]))
    return out


def _at(data: Any, path: list[Any]) -> Any:
    for p in path:
        data = data[p]
    return data


def _assert_clean_error(data: Any) -> None:
    with pytest.raises(ConfigError) as info:
        rampup.load(data)
    assert info.value.problems
    for p in info.value.problems:
        assert p.message
        assert str(p)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=valid_files(), data=st.data())
def test_mutations_give_config_error(base: dict[str, Any], data: st.DataObject) -> None:
    """Renaming a field, dropping a required one or replacing any value with garbage of the
    wrong shape is always a ConfigError, never another exception."""
    mutated = copy.deepcopy(base)
    kind = data.draw(st.sampled_from(["rename", "drop", "replace"]))
    if kind == "rename":
        path, _ = data.draw(st.sampled_from([r for r in _roles(mutated) if _at(mutated, r[0])]))
        table = _at(mutated, path)
        field = data.draw(st.sampled_from(sorted(table)))
        table[field + data.draw(st.sampled_from(["z", "_", "s"]))] = table.pop(field)
    elif kind == "drop":
        candidates = [(p, r) for p, r in _roles(mutated) if r in _REQUIRED]
        path, role = data.draw(st.sampled_from(candidates))
        table = _at(mutated, path)
        for field in _REQUIRED[role]:
            table.pop(field, None)
    else:
        path = data.draw(st.sampled_from(_nodes(mutated, [])))
        _at(mutated, path[:-1])[path[-1]] = {"nested": 5}
    _assert_clean_error(mutated)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=valid_files(), data=st.data())
def test_garbage_anywhere_never_crashes(base: dict[str, Any], data: st.DataObject) -> None:
    """Any garbage value at any place (or any key deleted) loads or gives a ConfigError, and a
    snapshot that loads evaluates without raising."""
    mutated = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        nodes = _nodes(mutated, [])
        if not nodes:
            break
        path = data.draw(st.sampled_from(nodes))
        parent = _at(mutated, path[:-1])
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            # a copy: inserting the shared GARBAGE object twice could nest it in itself
            parent[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(GARBAGE)))
    outcome: rampup.Snapshot | ConfigError
    try:
        outcome = rampup.load(mutated)
    except ConfigError as exc:
        outcome = exc
    if isinstance(outcome, ConfigError):
        assert outcome.problems
        return
    for key in outcome.flags:
        for subject in _SUBJECTS:
            assert outcome.evaluate(key, subject).key == key


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_files_never_crash(text: str) -> None:
    """Arbitrary text parsed as TOML, JSON or YAML gives data or one located problem."""
    for suffix in (".toml", ".json", ".yaml"):
        data, problem = rampup._files.parse(text, suffix, "f" + suffix)
        assert (problem is None) or (data is None and problem.message)
        if problem is None and isinstance(data, dict):
            with contextlib.suppress(ConfigError):
                rampup.load(data)
