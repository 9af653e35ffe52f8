"""Hostile flag documents: every load ends, within bounds, as a Snapshot or a located
ConfigError, never a traceback (issue 12, item 1); `matches` and request values are bounded."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rampup
from hostile_docs import CASES, EXAMPLE, Worker, check_cli, mutate
from rampup import ConfigError, Subject

pytest.importorskip("yaml")

# The example file and the small YAML cases (the deep-nesting cases take PyYAML ~1 s each).
SEEDS = [(".toml", EXAMPLE.read_text()), *((suffix, text) for _, suffix, text in CASES[:5])]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Worker:
    with Worker(tmp_path_factory.mktemp("hostile")) as w:
        yield w


@pytest.mark.parametrize(("name", "suffix", "text"), CASES, ids=[c[0] for c in CASES])
def test_hostile_case_loads_or_is_a_located_problem(
    worker: Worker, name: str, suffix: str, text: str
) -> None:
    """Each hostile case of the issue ends within the time and memory limits as a snapshot or
    a ConfigError whose problems name the file."""
    assert worker.load(suffix, text) in ("loaded", "config_error"), name


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.sampled_from(SEEDS), salt=st.integers(0, 2**32), rounds=st.integers(1, 6))
def test_mutated_documents_never_escape(
    worker: Worker, seed: tuple[str, str], salt: int, rounds: int
) -> None:
    """Randomly mutated documents (the example file and the hostile cases) load or fail with a
    located ConfigError, within the limits; nothing else escapes."""
    suffix, text = seed
    assert worker.load(suffix, mutate(text, random.Random(salt), rounds)) in (
        "loaded",
        "config_error",
    )


@pytest.mark.parametrize("index", [0, 4, 8, 10])
def test_rampup_check_on_hostile_cases(tmp_path: Path, index: int) -> None:
    """`rampup check` on the issue's cases exits 1 with located problems, within the limits."""
    name, suffix, text = CASES[index]
    path = tmp_path / f"case{suffix}"
    path.write_text(text)
    code, output = check_cli(path)
    assert code == 1, (name, output)
    assert str(path) in output
    assert "Traceback" not in output


def test_alias_bomb_is_refused_with_its_line(tmp_path: Path) -> None:
    """A 438-byte alias bomb is a located problem naming the limit, not a frozen process."""
    _, suffix, text = CASES[0]
    path = tmp_path / f"bomb{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        rampup.load(path)
    (problem,) = info.value.problems
    assert "alias bomb" in problem.message
    assert problem.line is not None


def test_yaml_duplicate_key_is_located(tmp_path: Path) -> None:
    """A key written twice in YAML is refused at the second one's line (TOML and JSON do too)."""
    path = tmp_path / "dup.yaml"
    path.write_text("flags:\n  a:\n    killed: true\n  a:\n    killed: false\n")
    with pytest.raises(ConfigError) as info:
        rampup.load(path)
    (problem,) = info.value.problems
    assert problem.line == 4
    assert "duplicate key 'a'" in problem.message


def test_yaml_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    """`<<: *base` followed by a key it also sets is an override, not a duplicate."""
    path = tmp_path / "merge.yaml"
    path.write_text(
        "base: &base {killed: true, description: x}\n"
        "flags:\n  a:\n    <<: *base\n    killed: false\n"
    )
    with pytest.raises(ConfigError) as info:  # `base` is an unknown top-level field
        rampup.load(path)
    assert [p.where for p in info.value.problems] == ["base"]


def test_many_problems_are_all_located_on_their_lines(tmp_path: Path) -> None:
    """4,000 problems are each reported on their own line (located in one pass)."""
    _, suffix, text = CASES[8]
    path = tmp_path / f"many{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        rampup.load(path)
    lines = [p.line for p in info.value.problems]
    assert lines == [3 * i + 2 for i in range(4000)]


def test_long_values_in_messages_are_cut_short() -> None:
    """A message quotes at most a short prefix of a huge value."""
    with pytest.raises(ConfigError) as info:
        rampup.load({"flags": {"f": {"description": ["x" * 1_000_000] * 1000}}})
    assert len(str(info.value)) < 300


def _flag(op: str, value: object) -> rampup.Snapshot:
    cond = {"attribute": "a", "op": op, "value": value}
    return rampup.load({"flags": {"f": {"rules": [{"conditions": [cond], "serve": "on"}]}}})


@pytest.mark.parametrize(
    ("op", "value", "header"),
    [
        ("semver_gte", "1.0.0", "9" * 4301),
        ("gte", 1, "9" * 5000),
        ("matches", "^(\\w+\\s?)*$", "a " * 600),  # over the 1,024-character cap
    ],
)
def test_oversized_request_values_do_not_match(
    op: str, value: object, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request value past its length cap does not match, and logs nothing."""
    snap = _flag(op, value)
    with caplog.at_level("DEBUG", logger="rampup"):
        d = snap.evaluate("f", Subject("u", {"a": header}))
    assert d.variant == "off"
    assert d.reason.value != "ERROR"
    assert not caplog.records


def test_catastrophic_pattern_runs_in_linear_time_with_re2() -> None:
    """With google-re2 the classic catastrophic pattern is accepted and a worst-case header at
    the cap is answered (RE2 does not backtrack)."""
    pytest.importorskip("re2")
    snap = _flag("matches", "^(\\w+\\s?)*$")
    assert snap.evaluate("f", Subject("u", {"a": "a" * 1023 + "!"})).variant == "off"
    assert snap.evaluate("f", Subject("u", {"a": "ab cd"})).variant == "on"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("^(\\w+\\s?)*$", "nests a repeat inside a repeat"),
        ("^(a|ab)*c$", "repeats an alternation"),
        ("(a)\\1", "backreference"),
        ("(?=a)a", "lookaround"),
        (".*.*=", "more than one unbounded repeat"),
    ],
)
def test_without_re2_backtracking_patterns_are_refused(pattern: str, why: str) -> None:
    """Without google-re2, patterns that backtrack exponentially (or that RE2 syntax lacks)
    are refused at load with a located problem and a hint."""
    script = (
        "import sys; sys.modules['re2'] = None\n"
        "import rampup\n"
        "try:\n"
        f"    rampup.load({{'flags': {{'f': {{'rules': [{{'serve': 'on', 'conditions': "
        f"[{{'attribute': 'a', 'op': 'matches', 'value': {pattern!r}}}]}}]}}}}}})\n"
        "except rampup.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "flags.f.rules[0].conditions[0].value" in out
    assert why in out
