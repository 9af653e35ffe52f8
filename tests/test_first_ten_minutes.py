"""The papercuts of a newcomer's first ten minutes (issue 13), each pinned by a test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rampup
from rampup.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _rampup(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )


def test_sign_refuses_an_abbreviated_option() -> None:
    """`rampup sign ... --secret abc` is a usage error, not `--secret-env abc` echoed back."""
    result = _rampup("sign", "new-checkout=on", "--secret", "abc", RAMPUP_OVERRIDE_SECRET="s")
    assert result.returncode == 2, result.stdout
    assert "unrecognized arguments: --secret abc" in result.stderr
    assert "abc" not in result.stdout


def test_no_parser_allows_abbreviations() -> None:
    """The top-level parser and every subcommand's parser have allow_abbrev off."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert parser.allow_abbrev is False
    assert subparsers.choices
    for name, sub in subparsers.choices.items():  # type: ignore[union-attr]
        assert sub.allow_abbrev is False, name


def test_sign_states_its_default_ttl() -> None:
    """Without --ttl, the output says the token lives 1h because that is the default; the
    help says the default too."""
    result = _rampup("sign", "new-checkout=on", RAMPUP_OVERRIDE_SECRET="s3cret")
    assert result.returncode == 0, result.stderr
    assert re.search(r"# expires \S+ \(in 1h, the default --ttl\)", result.stdout)
    assert "default 1h" in " ".join(_rampup("sign", "--help").stdout.split())
    explicit = _rampup("sign", "new-checkout=on", "--ttl", "2h", RAMPUP_OVERRIDE_SECRET="s")
    assert "(in 2h)" in explicit.stdout


TEST_DEFINED = """\
import rampup
from rampup.testing import bound_flags, snapshot_from


def price(cents: int) -> int:
    return cents * 90 // 100 if rampup.flags.enabled("sale") else cents


def test_price_during_the_sale():
    with bound_flags({"sale": True}):
        assert price(1000) == 900


def test_price_for_a_user():
    flags = snapshot_from({
        "sale": False,
        "theme": ["light", "dark"],
        "banner": {"variants": {"a": 1, "b": 2}, "default": "a"},
    })
    with bound_flags(flags, "user-42", sale=True, theme="dark"):
        assert rampup.flags.variant("theme") == "dark"
        assert rampup.flags.value("new-checkout") is None


def test_full_format():
    with bound_flags(snapshot_from({"flags": {"promo": True}, "segments": {}})):
        assert rampup.flags.enabled("promo")
"""


def test_refs_accepts_flags_that_tests_define_themselves(tmp_path: Path) -> None:
    """Keys defined by snapshot_from/bound_flags dicts are not typos in tests; they are listed
    apart, and a flag-file key read there still counts as a test read."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_price.py").write_text(TEST_DEFINED)
    result = _rampup(
        "refs", "tests", "--flags", str(ROOT / "examples" / "flags.toml"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout
    assert "Read but not defined" not in result.stdout
    section = result.stdout.split("Defined by tests themselves")[1].split("\n\n")[0]
    assert "sale  read at tests/test_price.py:6" in section
    assert re.search(r"^  theme  read at tests/test_price.py:\d+$", section, re.M)
    assert re.search(r"^  promo  read at", section, re.M)
    assert "new-checkout  tests/test_price.py:" in result.stdout


def test_refs_still_fails_code_that_reads_a_key_only_tests_define(tmp_path: Path) -> None:
    """Production serves the flag file: an app read of a test-only key is still undefined."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_price.py").write_text(TEST_DEFINED)
    (tmp_path / "app.py").write_text('import rampup\nrampup.flags.enabled("sale")\n')
    result = _rampup("refs", ".", "--flags", str(ROOT / "examples" / "flags.toml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "sale  at app.py:2" in result.stdout


def test_bench_docstrings_name_no_local_checkout() -> None:
    """bench/ tells how to run from any checkout: no absolute path of one machine."""
    for path in sorted((ROOT / "bench").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"/work/|/home/|/Users/", text), path.name


def test_example_flag_file_says_anonymous_visitors_are_split_too() -> None:
    """The checkout-button comment matches what happens: an anonymous id lands in the split."""
    text = (ROOT / "examples" / "flags.toml").read_text()
    comment = text.split("# checkout-button:")[1].split("\n[")[0]
    assert "signed-in users only" not in comment
    assert "anonymous" in comment
    snapshot = rampup.load(ROOT / "examples" / "flags.toml")
    decision = snapshot.evaluate("checkout-button", rampup.Subject("0f" * 16))
    assert decision.reason is rampup.Reason.SPLIT


DJANGO_PAGE = """\
import os, sys
sys.path.insert(0, {project!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
import django
django.setup()
from django.test import Client
from rampup.bucketing import bucket
# a user whom the split (not the beta segment) serves green: buckets 3334-6666
user = next(f"u{{i}}" for i in range(1000) if 3334 <= bucket("checkout-button", f"u{{i}}") < 6667)
page = Client(SERVER_NAME="localhost").get("/", headers={{"X-Demo-User": user}}).content.decode()
assert "#2da44e" in page, page
print(page)
"""


def test_django_example_does_not_tell_split_users_they_are_in_the_beta() -> None:
    """Served green by the split, a visitor is not told "You are in the beta"."""
    pytest.importorskip("django")
    script = DJANGO_PAGE.format(project=str(ROOT / "examples" / "django_project"))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "You are in the beta" not in result.stdout
    assert "green" in result.stdout
