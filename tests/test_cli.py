"""The `rampup` command, run as a real subprocess: output, --json, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rampup

SPLITS = """\
[flags.ten]
[[flags.ten.rules]]
split = { on = 10, off = 90 }

[flags.colour]
variants = { red = "#f00", green = "#0f0", blue = "#00f" }
default = "red"
[[flags.colour.rules]]
split = { red = 20, green = 30, blue = 50 }

[flags.adults]
[[flags.adults.rules]]
conditions = [
  { attribute = "age", op = "gte", value = 18 },
  { attribute = "beta", op = "equals", value = true },
]
serve = "on"
"""

BROKEN = """\
[flags.alpha]
rulez = []

[[flags.alpha.rules]]
split = { on = 60, off = 50 }
"""


def rampup_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m rampup ARGS`; assert that it never prints a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


@pytest.fixture
def splits(tmp_path: Path) -> str:
    """A flag file with a 10 % split, a three-way split and a condition rule."""
    path = tmp_path / "splits.toml"
    path.write_text(SPLITS, encoding="utf-8")
    return str(path)


@pytest.fixture
def broken(tmp_path: Path) -> str:
    """A flag file with two problems."""
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    return str(path)


def test_check_ok(example_path: Path) -> None:
    """`check` on a valid file exits 0 with a one-line summary."""
    snap = rampup.load(example_path)
    killed = ", ".join(sorted(k for k, f in snap.flags.items() if f.killed))
    proc = rampup_cli("check", str(example_path))
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"{example_path}: OK ({len(snap.flags)} flags, {len(snap.segments)} segments; "
        f"killed: {killed})"
    )


def test_check_ok_json(example_path: Path) -> None:
    """`check --json` on a valid file reports counts and killed flags."""
    snap = rampup.load(example_path)
    proc = rampup_cli("check", str(example_path), "--json")
    assert proc.returncode == 0
    assert as_json(proc) == {
        "ok": True,
        "flags": len(snap.flags),
        "segments": len(snap.segments),
        "killed": sorted(k for k, f in snap.flags.items() if f.killed),
    }


def test_check_lists_every_problem(broken: str) -> None:
    """`check` on an invalid file exits 1 and prints every problem with file and line."""
    proc = rampup_cli("check", broken)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr
    assert "2 problems in flag configuration" in err
    assert f"{broken}:2: flags.alpha.rulez: unknown field (hint: did you mean 'rules'?)" in err
    assert f"{broken}:5: flags.alpha.rules[0].split: weights sum to 110, not 100" in err


def test_check_json_problems(broken: str) -> None:
    """`check --json` on an invalid file exits 1 with every problem as data."""
    proc = rampup_cli("check", broken, "--json")
    assert proc.returncode == 1
    data = as_json(proc)
    assert data["ok"] is False
    assert data["problems"] == [
        {
            "file": broken,
            "line": 2,
            "where": "flags.alpha.rulez",
            "message": "unknown field",
            "hint": "did you mean 'rules'?",
        },
        {
            "file": broken,
            "line": 5,
            "where": "flags.alpha.rules[0].split",
            "message": "weights sum to 110, not 100",
            "hint": None,
        },
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.toml", "file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.toml", b""), "file is empty"),
        (lambda d: _write(d / "bin.toml", bytes(range(256))), "NUL bytes"),
        (lambda d: _write(d / "bad.json", b'{"flags": {,}}'), "invalid JSON"),
    ],
)
def test_check_unreadable_inputs(tmp_path: Path, make: Any, message: str) -> None:
    """Files that are not flag files give exit 1 and one clear message, no traceback."""
    proc = rampup_cli("check", str(make(tmp_path)))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert proc.stderr.startswith("rampup: ")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_explain_rule_match(example_path: Path) -> None:
    """`explain` names the variant, the reason and the rule that matched."""
    proc = rampup_cli("explain", str(example_path), "new-checkout", "--id", "qa-alice")
    assert proc.returncode == 0
    out = proc.stdout
    assert "variant   on  (value True)" in out
    assert "reason    RULE_MATCH" in out
    assert "rule      #0: QA first" in out
    assert "bucket    " in out
    assert "(no split decided this)" in out


def test_explain_json_split_with_bucket(example_path: Path) -> None:
    """`explain --json --at` during a ramp gives the split decision and the subject's bucket."""
    proc = rampup_cli(
        "explain",
        str(example_path),
        "new-checkout",
        "--id",
        "user-1",
        "--at",
        "2026-12-08T12:00:00Z",
        "--json",
    )
    assert proc.returncode == 0
    data = as_json(proc)
    assert data["bucket"] == 8985  # the pinned vector for ("new-checkout", "user-1")
    assert data["bucketing"] == "v1"
    assert (data["flag"], data["reason"], data["rule_index"]) == ("new-checkout", "SPLIT", 2)
    assert data["variant"] == "off"
    assert data["value"] is False
    assert data["rule"]["index"] == 2
    assert data["subject"] == {"key": "user-1", "attributes": {}}


def test_explain_at_before_and_after_ramp(example_path: Path) -> None:
    """`--at` moves the clock: before the ramp the default, after its last step on."""
    before = as_json(
        rampup_cli(
            "explain",
            str(example_path),
            "new-checkout",
            "--id",
            "user-1",
            "--at",
            "2026-11-01",
            "--json",
        )
    )
    assert (before["variant"], before["reason"], before["rule_index"]) == ("off", "DEFAULT", None)
    after = as_json(
        rampup_cli(
            "explain",
            str(example_path),
            "new-checkout",
            "--id",
            "user-1",
            "--at",
            "2026-12-10T00:00:00+00:00",
            "--json",
        )
    )
    assert (after["variant"], after["reason"]) == ("on", "SPLIT")


def test_explain_at_without_zone_is_utc(example_path: Path) -> None:
    """A bare --at date means midnight UTC, like dates in the file, whatever the local zone."""
    proc = rampup_cli(
        "explain",
        str(example_path),
        "new-checkout",
        "--id",
        "user-1",
        "--at",
        "2026-12-10",
        "--json",
        env={"TZ": "JST-9"},
    )
    assert (as_json(proc)["variant"], as_json(proc)["reason"]) == ("on", "SPLIT")


def test_explain_attr_typing(splits: str) -> None:
    """--attr values are typed like JSON scalars: numbers, booleans, else strings."""
    proc = rampup_cli(
        "explain",
        splits,
        "adults",
        "--id",
        "u",
        "--attr",
        "age=42",
        "--attr",
        "beta=true",
        "--attr",
        "name=bob",
        "--attr",
        "version=4.2.0",
        "--attr",
        "empty=",
        "--json",
    )
    data = as_json(proc)
    assert data["subject"]["attributes"] == {
        "age": 42,
        "beta": True,
        "name": "bob",
        "version": "4.2.0",
        "empty": "",
    }
    assert (data["variant"], data["reason"]) == ("on", "RULE_MATCH")
    minor = as_json(
        rampup_cli(
            "explain",
            splits,
            "adults",
            "--id",
            "u",
            "--attr",
            "age=17",
            "--attr",
            "beta=true",
            "--json",
        )
    )
    assert minor["reason"] == "DEFAULT"


def test_explain_without_key(splits: str) -> None:
    """A subject with no --id never enters a split: the default, and the reason says why."""
    proc = rampup_cli("explain", splits, "ten")
    assert proc.returncode == 0
    assert "subject   (no key)" in proc.stdout
    assert "reason    DEFAULT: rule 0 splits by 'key'" in proc.stdout
    assert "bucket" not in proc.stdout


def test_explain_unknown_flag(example_path: Path) -> None:
    """`explain` of a flag not in the file exits 1 and lists the flags there are."""
    proc = rampup_cli("explain", str(example_path), "new-chekout", "--id", "u")
    assert proc.returncode == 1
    assert "no flag 'new-chekout'" in proc.stderr
    assert "new-checkout" in proc.stderr


def test_explain_invalid_file(broken: str) -> None:
    """`explain` on an invalid file exits 1 with the problems."""
    proc = rampup_cli("explain", broken, "alpha", "--id", "u")
    assert proc.returncode == 1
    assert "flags.alpha.rulez" in proc.stderr


def test_simulate_table(splits: str) -> None:
    """`simulate` prints each flag with a share, a bar and a count per variant."""
    proc = rampup_cli("simulate", splits, "--n", "2000")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "ten"
    on = next(line for line in lines if line.strip().startswith("on "))
    assert "%" in on
    assert "###" in on
    assert on.split()[-1].isdigit()
    blue = next(line for line in lines if line.strip().startswith("blue"))
    assert "#" * 12 in blue  # about half of a 30-character bar
    assert "colour" in lines
    assert "adults" in lines


def test_simulate_json_shares_near_weights(splits: str) -> None:
    """Over 20,000 subjects the realized shares are close to the split weights."""
    proc = rampup_cli(
        "simulate", splits, "--n", "20000", "--json", "--flag", "ten", "--flag", "colour"
    )
    assert proc.returncode == 0
    data = as_json(proc)
    assert data["n"] == 20_000
    assert set(data["flags"]) == {"ten", "colour"}
    expected = {
        "ten": {"on": 0.10, "off": 0.90},
        "colour": {"red": 0.20, "green": 0.30, "blue": 0.50},
    }
    for key, shares in expected.items():
        got = data["flags"][key]
        assert sum(v["count"] for v in got.values()) == 20_000
        for variant, share in shares.items():
            assert abs(got[variant]["share"] - share) < 0.015, (key, variant, got)


def test_simulate_with_attr_and_at(example_path: Path) -> None:
    """`simulate --attr --at` applies the attributes and the time to every subject."""
    data = as_json(
        rampup_cli(
            "simulate",
            str(example_path),
            "--n",
            "500",
            "--json",
            "--flag",
            "new-checkout",
            "--attr",
            "email=x@example.com",
            "--at",
            "2026-01-01",
        )
    )
    assert data["flags"]["new-checkout"]["on"]["share"] == 1.0  # staff rule
    data = as_json(
        rampup_cli(
            "simulate",
            str(example_path),
            "--n",
            "500",
            "--json",
            "--flag",
            "new-checkout",
            "--at",
            "2026-12-11",
        )
    )
    assert data["flags"]["new-checkout"]["on"]["share"] == 1.0  # ramp at 100 %


def test_simulate_unknown_flag(example_path: Path) -> None:
    """`simulate --flag` of an undefined flag exits 1 naming it."""
    proc = rampup_cli("simulate", str(example_path), "--flag", "nope")
    assert proc.returncode == 1
    assert "no flag 'nope'" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["check"],
        ["explain", "FILE"],
        ["simulate", "FILE", "--n", "abc"],
        ["simulate", "EXAMPLE", "--n", "0"],
        ["explain", "EXAMPLE", "new-checkout", "--attr", "novalue"],
        ["explain", "EXAMPLE", "new-checkout", "--at", "yesterday"],
        ["simulate", "EXAMPLE", "--at", "2026-13-01"],
        ["check", "EXAMPLE", "--jsn"],
    ],
)
def test_usage_errors_exit_2(args: list[str], example_path: Path) -> None:
    """Wrong usage exits 2 with a message on stderr, never a traceback."""
    args = [str(example_path) if a == "EXAMPLE" else a for a in args]
    proc = rampup_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip()
    assert proc.stdout == ""


def test_version() -> None:
    """`--version` prints the package version."""
    proc = rampup_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"rampup {rampup.__version__}"


def test_explain_checks_signed_overrides_with_the_secrets_from_secret_env(
    example_path: Path,
) -> None:
    """explain --override --secret-env NAME verifies a signed token against the comma-
    separated secrets in $NAME (rotation), and refuses it with the wrong ones."""
    signed = rampup_cli(
        "sign", "new-checkout=on", "--ttl", "1h", "--json", env={"RAMPUP_OVERRIDE_SECRET": "s2"}
    )
    assert signed.returncode == 0, signed.stderr
    token = json.loads(signed.stdout)["token"]
    args = ("explain", str(example_path), "new-checkout", "--override", token)
    good = rampup_cli(*args, "--secret-env", "QA_KEYS", env={"QA_KEYS": "s1,s2"})
    assert good.stdout.splitlines()[-1] == "override  'on' honoured"
    bad = rampup_cli(*args, "--secret-env", "QA_KEYS", env={"QA_KEYS": "nope"})
    assert "refused: bad signature" in bad.stdout.splitlines()[-1]
