"""`rampup check/explain/simulate/refs --env`, expiry warnings and deletion candidates, run as
real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ADVANCED = Path(__file__).resolve().parents[2] / "examples" / "flags-advanced.toml"
EXPIRED = """\
[flags.old-banner]
owner = "team-web"
expires = 2020-01-31

[flags.later]
expires = 2999-12-31
rules = [{ split = { on = 10, off = 90 } }]

[flags.kept]
kind = "permanent"
default = "on"

[flags.done]
rules = [{ serve = "on" }]

[flags.stopped]
killed = true

[environments.production.flags.later]
killed = true
"""


def rampup(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture
def expired_file(tmp_path: Path) -> Path:
    path = tmp_path / "flags.toml"
    path.write_text(EXPIRED)
    return path


def test_check_lists_environments_and_validates_the_one_asked() -> None:
    """check names every environment; --env with an unknown name exits 1 naming the known."""
    ok = rampup("check", str(ADVANCED), "--env", "production")
    assert ok.returncode == 0
    assert "environments: development, staging, production; checked as production" in ok.stdout
    bad = rampup("check", str(ADVANCED), "--env", "prod")
    assert bad.returncode == 1
    assert "unknown environment 'prod'" in bad.stderr


def test_check_warns_on_expired_temporary_flags(expired_file: Path) -> None:
    """An expired temporary flag is a located warning (exit 0), an error with --strict."""
    warn = rampup("check", str(expired_file))
    assert warn.returncode == 0
    assert (
        f"warning: {expired_file}:3: flags.old-banner.expires: "
        "temporary flag expired on 2020-01-31 (owner: team-web)" in warn.stdout
    )
    assert "later" not in warn.stdout.split("\n")[0]
    strict = rampup("check", str(expired_file), "--strict", "--json")
    assert strict.returncode == 1
    data = json.loads(strict.stdout)
    assert (data["ok"], [p["where"] for p in data["expired"]]) == (
        False,
        ["flags.old-banner.expires"],
    )


def test_explain_shows_the_prerequisite_chain() -> None:
    """explain --env prints each prerequisite, met or not, with what it served."""
    out = rampup(
        "explain", str(ADVANCED), "express-pay", "--id", "u1", "--env", "development"
    ).stdout
    assert "env       development" in out
    assert "requires  new-checkout = 'on': met (served 'on', RULE_MATCH)" in out
    assert "requires  payment-provider = 'stripe': met (served 'stripe', DEFAULT)" in out


def test_simulate_takes_env() -> None:
    """simulate --env production shows the overlay (express-pay killed there)."""
    out = rampup(
        "simulate",
        str(ADVANCED),
        "--n",
        "100",
        "--flag",
        "express-pay",
        "--env",
        "production",
        "--json",
    )
    shares = json.loads(out.stdout)["flags"]["express-pay"]
    assert shares["off"]["count"] == 100


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_refs_lists_deletion_candidates(expired_file: Path, tmp_path: Path) -> None:
    """refs lists per flag its owner and why it may go: expired, rolled out, killed for long
    (from git blame); permanent and future flags are kept."""
    git_env = {
        "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for cmd in (["init", "-q"], ["add", "flags.toml"], ["commit", "-qm", "flags"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, env={**os.environ, **git_env})
    (tmp_path / "app.py").write_text('from rampup import flags\nflags.enabled("old-banner")\n')
    proc = rampup("refs", str(tmp_path / "app.py"), "--flags", str(expired_file), "--json")
    life = {f["key"]: f for f in json.loads(proc.stdout)["flags"]}
    assert life["old-banner"]["owner"] == "team-web"
    assert life["old-banner"]["reasons"][0] == "expired on 2020-01-31"
    assert life["old-banner"]["refs"][0]["line"] == 2
    assert life["done"]["reasons"] == [
        "fully rolled out: 'on' for everyone (rule 0 is serving everyone)"
    ]
    assert life["stopped"]["reasons"][0].startswith("killed for ")
    assert not life["kept"]["delete_candidate"]
    assert not life["later"]["delete_candidate"]
    prod = rampup(
        "refs", str(tmp_path / "app.py"), "--flags", str(expired_file), "--env", "production"
    )
    assert "later  (no owner): killed for " in prod.stdout


def test_refs_without_git_says_killed_since_unknown(expired_file: Path, tmp_path: Path) -> None:
    """Outside a git work tree, how long a flag was killed is unknown, and said so."""
    proc = rampup(
        "refs",
        str(expired_file),
        "--flags",
        str(expired_file),
        env={"GIT_DIR": str(tmp_path / "nogit")},
    )
    assert "stopped  (no owner): killed (since when unknown: not in git)" in proc.stdout
