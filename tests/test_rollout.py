"""Guarded stages in the flag file: syntax, located errors, monotonic buckets, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

import rampup
from rampup.model import Reason, Subject
from rampup.rollout import describe, find_rollout, parse_duration, with_stage

ROLLOUT = """\
[flags.new-checkout]
description = "the new checkout"
[[flags.new-checkout.rules]]
segments = ["staff"]
serve = "on"
[[flags.new-checkout.rules]]
rollout = { stages = [1, 5, 25, 50, 100], stage = 2, hold = "2h", guard = { latency = "p99" } }

[flags.theme]
variants = ["old", "new", "dark"]
default = "old"
[[flags.theme.rules]]
rollout = { stages = [10, 100], treatment = "new", control = "old" }

[segments.staff]
keys = ["alice"]
"""

BROKEN = """\
[flags.a]
[[flags.a.rules]]
rollout = { stages = [5, 1, 200], stage = 9, hold = "soon", guard = { alpah = 0.1 } }

[flags.b]
variants = ["x", "y"]
default = "x"
[[flags.b.rules]]
rollout = { stages = [50] }
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "flags.toml"
    p.write_text(ROLLOUT, encoding="utf-8")
    return p


def test_a_rollout_rule_serves_its_stage(path: Path) -> None:
    """Stage 2 of [1, 5, 25, 50, 100] serves on to about 25 % of subjects, after the rules
    before it (staff get on)."""
    snap = rampup.load(path)
    rule = snap.flags["new-checkout"].rules[1]
    assert rule.rollout is not None
    assert rule.rollout.share == 25
    assert rule.rollout.hold == 7200
    assert rule.rollout.latency == "p99"
    assert rule.rollout.errors
    assert rule.split is not None
    assert rule.split.weights == (("on", 2500), ("off", 7500))
    on = sum(snap.evaluate("new-checkout", Subject(f"u{i}")).enabled for i in range(4000))
    assert 0.22 < on / 4000 < 0.28
    d = snap.evaluate("new-checkout", Subject("u1"))
    assert d.reason is Reason.SPLIT
    assert d.rule_index == 1


def test_a_multi_variant_rollout_names_its_variants(path: Path) -> None:
    """Non-boolean flags name treatment and control; other variants are never served by it."""
    snap = rampup.load(path)
    served = {snap.evaluate("theme", Subject(f"u{i}")).variant for i in range(2000)}
    assert served == {"new", "old"}


def test_problems_are_located(tmp_path: Path) -> None:
    """Each problem names the file, line and field, with a hint where one helps."""
    p = tmp_path / "broken.toml"
    p.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(rampup.ConfigError) as info:
        rampup.load(p)
    found = {(pr.where, pr.line) for pr in info.value.problems}
    assert ("flags.a.rules[0].rollout.stages[1]", 3) in found
    assert ("flags.a.rules[0].rollout.stages[2]", 3) in found
    assert ("flags.a.rules[0].rollout.stage", 3) in found
    assert ("flags.a.rules[0].rollout.hold", 3) in found
    assert ("flags.a.rules[0].rollout.guard.alpah", 3) in found
    assert ("flags.b.rules[0].rollout.treatment", 9) in found
    assert ("flags.b.rules[0].rollout.control", 9) in found
    text = str(info.value)
    assert "did you mean 'alpha'?" in text
    assert "name the variant this rollout ramps up" in text


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"stages": []}, "expects a list of percentages"),
        ({"stages": [0.001]}, "finer than 0.01 %"),
        ({"stages": [1], "not_before": ["x"]}, "is not an ISO 8601 date"),
        ({"stages": [1], "not_before": ["2026-01-01", "2026-01-02"]}, "2 dates for 1 stages"),
        ({"stages": [1], "treatment": "off"}, "is the same variant as the treatment"),
        ({"stages": [1], "guard": {"alpha": 0.9}}, "between 0 and 0.5"),
        ({"stages": [1], "guard": {"min_requests": -1}}, "whole number >= 0"),
        ({"stages": [1], "guard": {"errors": "yes"}}, "expects true or false"),
        ({"stages": [1], "guard": 3}, "expects a table"),
        ("fast", "expects a table"),
        ({"stages": [1], "not_before": "2026-01-01"}, "expects a list of dates"),
        ({"stages": [1], "held": "yes"}, r"held: expects true or false \(true: an operator"),
    ],
)
def test_invalid_rollouts_are_refused(rollout: Any, message: str) -> None:
    """Each malformed rollout is refused with a message a stranger can act on."""
    with pytest.raises(rampup.ConfigError, match=message):
        rampup.load({"flags": {"f": {"rules": [{"rollout": rollout}]}}})


def test_a_rule_has_one_outcome() -> None:
    """A rule with both a split and a rollout is refused."""
    with pytest.raises(
        rampup.ConfigError, match=r"exactly one of serve, split or ramp \(has split, rollout\)"
    ):
        rampup.load(
            {"flags": {"f": {"rules": [{"rollout": {"stages": [1]}, "split": {"on": 100}}]}}}
        )


def test_durations() -> None:
    """Durations: seconds, minutes, hours, days, or a number of seconds; else None."""
    assert [parse_duration(x) for x in ("90s", "30m", "2h", "1d", 45, "1.5h")] == [
        90,
        1800,
        7200,
        86400,
        45,
        5400,
    ]
    assert [parse_duration(x) for x in ("3x", -1, True, None)] == [None] * 4


@settings(max_examples=30, deadline=None)
@given(s.lists(s.integers(1, 10000), min_size=2, max_size=5, unique=True))
def test_buckets_are_monotonic_across_stages(basis_points: list[int]) -> None:
    """Nobody served on at one stage flips back to off at a later one."""
    stages = [bp / 100 for bp in sorted(basis_points)]
    snap = rampup.load({"flags": {"f": {"rules": [{"rollout": {"stages": stages}}]}}})
    flag = snap.flags["f"]
    before: set[int] = set()
    for i in range(len(stages)):
        staged = rampup.Snapshot.build({"f": with_stage(flag, i)}, {})
        on = {k for k in range(500) if staged.evaluate("f", Subject(str(k))).enabled}
        assert before <= on
        before = on


def test_with_stage_refuses_what_does_not_exist(path: Path) -> None:
    """Moving a flag without a rollout, or past its last stage, is a ValueError."""
    snap = rampup.load(path)
    with pytest.raises(ValueError, match="out of range"):
        with_stage(snap.flags["new-checkout"], 5)
    plain = rampup.load({"flags": {"g": {}}}).flags["g"]
    assert find_rollout(plain) is None
    with pytest.raises(ValueError, match="no rollout"):
        with_stage(plain, 0)


def test_check_and_explain_understand_rollouts(path: Path) -> None:
    """`check` lists rollouts and their share; `explain` shows the stage and the guard."""
    proc = cli("check", str(path))
    assert proc.returncode == 0
    assert "guarded rollouts: new-checkout at 25 %, theme at 10 %" in proc.stdout
    data = json.loads(cli("check", str(path), "--json").stdout)
    assert data["rollouts"] == {"new-checkout": 25, "theme": 10}
    proc = cli("explain", str(path), "new-checkout", "--id", "u1")
    assert proc.returncode == 0
    flag = rampup.load(path).flags["new-checkout"]
    rollout = flag.rules[1].rollout
    assert rollout is not None
    assert f"rollout   {describe(rollout)}" in proc.stdout
    assert "stage 2 of 5 (on 25 %, off the rest), hold 120m" in proc.stdout
    data = json.loads(cli("explain", str(path), "new-checkout", "--id", "u1", "--json").stdout)
    assert data["rule"]["rollout"]["share"] == 25


def test_guard_status_reads_sums(path: Path, tmp_path: Path) -> None:
    """`guard status` with a JSON of sums: the halt evidence and reason, per flag."""
    sums = tmp_path / "sums.json"
    sums.write_text(
        json.dumps(
            {
                "new-checkout": {
                    "on": {"requests": 2700, "error_subjects": 120},
                    "off": {"requests": 8100, "error_subjects": 160},
                }
            }
        ),
        encoding="utf-8",
    )
    proc = cli("guard", "status", str(path), "--counts", str(sums), "--since", "2026-01-01")
    assert proc.returncode == 0, proc.stderr
    assert "new-checkout: stage 2 (on 25 %) of 1, 5, [25], 50, 100" in proc.stdout
    assert "verdict  halt: guard: on errors 2.2x off, E=" in proc.stdout
    data = json.loads(cli("guard", "status", str(path), "--counts", str(sums), "--json").stdout)
    assert [d["flag"] for d in data] == ["new-checkout", "theme"]
    assert data[0]["verdict"] == "halt"
    assert data[1]["verdict"] == "hold"
    assert data[1]["waiting_for"][0] == "the hold (30m left)"


def test_a_held_rollout_loads_and_guard_status_says_so(path: Path) -> None:
    """held = true loads (false by default); `describe` and `rampup guard status` say the stage
    is held by an operator."""
    assert find_rollout(rampup.load(path).flags["theme"])[1].held is False  # type: ignore[index]
    path.write_text(ROLLOUT.replace("control = ", "held = true, control = "), encoding="utf-8")
    _, rollout = find_rollout(rampup.load(path).flags["theme"])  # type: ignore[misc]
    assert rollout.held is True
    assert describe(rollout).endswith(", held by an operator")
    proc = cli("guard", "status", str(path))
    assert proc.returncode == 0, proc.stderr
    theme = proc.stdout.split("theme:")[1]
    assert "verdict  hold: held by an operator" in theme
    assert "waits for an operator's release (held by an operator)" in theme


def test_guard_status_explains_a_bad_counts_file(path: Path, tmp_path: Path) -> None:
    """A counts file that is not JSON exits 1 with the expected shape, never a traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    proc = cli("guard", "status", str(path), "--counts", str(bad))
    assert proc.returncode == 1
    assert "expected JSON like" in proc.stderr


@pytest.mark.parametrize(
    "sums",
    [
        {"new-checkout": {"on": {"requests": "many"}}},
        {"new-checkout": {"on": {"requests": 1.5}}},
        {"new-checkout": 3},
        [1, 2],
    ],
)
def test_guard_status_refuses_malformed_sums(path: Path, tmp_path: Path, sums: Any) -> None:
    """Sums that are not whole numbers in the expected shape exit 1 with a message."""
    bad = tmp_path / "sums.json"
    bad.write_text(json.dumps(sums), encoding="utf-8")
    proc = cli("guard", "status", str(path), "--counts", str(bad))
    assert proc.returncode == 1
    assert "expected JSON like" in proc.stderr
