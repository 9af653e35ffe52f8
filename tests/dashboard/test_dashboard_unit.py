"""The dashboard's parts without a server: rules in words, intervals, states, kill records,
diffs, edits, CSRF and the authorisation gate."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rampup import load
from rampup.dashboard import Dashboard, Unprotected
from rampup.dashboard import history as hist
from rampup.dashboard.edits import held_edit, kill_edit, stage_edit
from rampup.dashboard.http import Request
from rampup.dashboard.live import figures, wilson
from rampup.dashboard.security import SESSION_COOKIE, Csrf, is_loopback, who
from rampup.dashboard.views import flag_view, kill_records, matches, variant_value
from rampup.model import Condition, Rule, Segment
from rampup.outcomes import VariantStats
from rampup.rule_text import condition_words, rule_summary, rule_words, segment_words

from .conftest import EXAMPLE, example_doc


def test_rule_words_say_conditions_and_what_is_served() -> None:
    """A rule reads as a sentence: its segments and conditions, then what it serves."""
    rule = Rule(segments=("staff",), conditions=(Condition("role", "in", ["admin", "owner"]),))
    rule = Rule(rule.segments, rule.conditions, serve="on")
    assert rule_words(rule) == 'if segment staff and role is one of "admin", "owner": serve on'
    assert rule_summary(rule) == "staff"


def test_identifying_values_are_never_in_words() -> None:
    """A condition on the subject key and a segment's listed ids show as counts only."""
    words = condition_words(Condition("key", "in", ["u-123", "u-456"]))
    assert "u-123" not in words
    assert "2 listed values" in words
    seg = Segment("qa", keys=frozenset({"qa-alice", "qa-bob"}))
    assert segment_words(seg) == "2 listed ids"


def test_ramp_and_rollout_in_words() -> None:
    """A ramp lists its steps with dates; a guarded rollout says its stage."""
    snap = load(example_doc())
    ramp = rule_words(snap.flags["new-checkout"].rules[2])
    assert ramp.startswith("everyone: ramp: on 1 %, off 99 % from 2026-12-01 09:00 UTC")
    assert "guarded rollout, stage 1 of 4" in rule_words(snap.flags["fast-search"].rules[0])


def test_wilson_interval_brackets_the_rate() -> None:
    """The interval holds the observed rate and narrows with more requests."""
    lo, hi = wilson(5, 100)
    assert lo < 0.05 < hi
    lo2, hi2 = wilson(50, 1000)
    assert hi2 - lo2 < hi - lo
    assert wilson(0, 0) == (0.0, 1.0)


def _stats(requests: int, errors: int) -> VariantStats:
    return VariantStats(requests, errors, errors, 0.0, 0.0, (requests,))


def test_a_variant_clearly_worse_than_the_baseline_is_regressing() -> None:
    """on at 10 % errors against off at 1 % is marked regressing; off never is."""
    flag = load({"flags": {"f": {"rules": [{"split": {"on": 50, "off": 50}}]}}}).flags["f"]
    figs = figures(flag, {"on": _stats(1000, 100), "off": _stats(1000, 10)})
    assert figs["on"].regressing
    assert not figs["off"].regressing
    close = figures(flag, {"on": _stats(1000, 12), "off": _stats(1000, 10)})
    assert not close["on"].regressing


def test_flag_states_and_filters() -> None:
    """Killed, rollout (ramp or guarded stages) and stale (one variant for all) are told apart."""
    snap = load(example_doc())
    at = datetime(2026, 12, 4, tzinfo=timezone.utc)
    views = {k: flag_view(f, None, at) for k, f in snap.flags.items()}
    assert views["recommendations"].badges == ("killed",)
    assert views["new-checkout"].kind == "ramp"
    assert views["new-checkout"].now == "ramp at on 10 %, off 90 %"
    assert "the next step: on 50 %, off 50 % from 2026-12-07" in views["new-checkout"].waits
    assert views["fast-search"].kind == "rollout"
    assert "5 %" in views["fast-search"].now
    assert matches(views["new-checkout"], "checkout", "rollout")
    assert not matches(views["checkout-button"], "", "killed")
    done = load({"flags": {"old": {"rules": [{"split": {"on": 100, "off": 0}}]}}}).flags["old"]
    assert flag_view(done).stale
    assert views["admin-panel"].now == "rules: staff → on"
    assert not views["admin-panel"].stale
    assert views["winter-banner"].stale  # one rule serving everyone


def test_colour_values_get_a_swatch() -> None:
    """A hex colour value is recognised; other strings are not."""
    assert variant_value("#1f6feb")["colour"] == "#1f6feb"
    assert variant_value("blue")["colour"] is None
    assert variant_value(True)["text"] == "true"


def _doc(version: int, data: dict[str, Any], by: str = "", reason: str = "") -> Any:
    from rampup.store import Document, canonical, sha_of

    return Document(version, sha_of(canonical(data)), data, 1.0e9 + version, by, reason)


def test_kill_record_names_the_version_that_killed() -> None:
    """The kill's author and reason come from the version that flipped it, not later ones."""
    base = example_doc()
    killed = example_doc()
    killed["flags"]["new-checkout"]["killed"] = True
    later = example_doc()
    later["flags"]["new-checkout"]["killed"] = True
    later["flags"]["admin-panel"]["description"] = "edited"
    history = [_doc(3, later, "bob"), _doc(2, killed, "alice", "kill: 5xx"), _doc(1, base)]
    records = kill_records(history)
    assert records["new-checkout"].by == "alice"
    assert records["new-checkout"].version == 2


def test_diff_names_kills_and_rule_changes_without_ids() -> None:
    """The diff shows a kill, a changed rule in words, and a segment's ids as a count."""
    a = example_doc()
    b = example_doc()
    b["flags"]["new-checkout"]["killed"] = True
    b["flags"]["fast-search"]["rules"][0]["rollout"]["stage"] = 2
    b["segments"]["qa"]["keys"] = ["qa-alice", "qa-bob", "qa-carol"]
    lines = hist.diff(_doc(1, a), _doc(2, b))
    assert ("kill", "new-checkout: killed") in lines
    assert any("stage 1 of 4" in line and "stage 2 of 4" in line for _, line in lines)
    assert any("3 listed ids" in line for _, line in lines)
    assert not any("qa-carol" in line for _, line in lines)
    assert hist.touches(lines, "fast-search")
    assert not hist.touches(lines, "admin-panel")


def test_read_only_edits_in_the_files_syntax() -> None:
    """A TOML file gets `killed = true` under [flags.X]; YAML its own form; a rollout its stage
    and its hold."""
    snap = load(example_doc())
    toml = kill_edit(SimpleNamespace(path=EXAMPLE), snap.flags["new-checkout"], True)
    assert toml.text == "[flags.new-checkout]\nkilled = true"
    assert str(EXAMPLE) in toml.target
    yaml = kill_edit(SimpleNamespace(path="f.yaml"), snap.flags["new-checkout"], True)
    assert "killed: true" in yaml.text
    stage = stage_edit(SimpleNamespace(path=EXAMPLE), snap.flags["fast-search"], 2)
    assert stage is not None
    assert "stage = 2" in stage.text
    assert stage_edit(SimpleNamespace(path=EXAMPLE), snap.flags["new-checkout"], 2) is None
    hold = held_edit(SimpleNamespace(path="f.yaml"), snap.flags["fast-search"])
    assert hold is not None
    assert "rollout: { held: true, ... }" in hold.text
    assert held_edit(SimpleNamespace(path=EXAMPLE), snap.flags["new-checkout"]) is None


def _request(**kw: Any) -> Request:
    base: dict[str, Any] = {
        "method": "POST",
        "root": "/_rampup",
        "path": "/",
        "query": {},
        "headers": {},
        "remote_addr": "10.0.0.1",
    }
    base.update(kw)
    return Request(**base)


def test_csrf_token_is_bound_to_session_and_user() -> None:
    """The token checks for its session and user only, and a foreign Origin is refused."""
    csrf = Csrf("s3cret")
    token = csrf.token("sess", "alice")
    ok = _request(headers={"cookie": f"{SESSION_COOKIE}=sess", "host": "h"}, user="alice")
    assert csrf.check(ok, {"csrf": token}) is None
    assert csrf.check(ok, {"csrf": csrf.token("other", "alice")}) is not None
    assert csrf.check(_request(user="alice"), {"csrf": token}) is not None  # no cookie
    bob = _request(headers={"cookie": f"{SESSION_COOKIE}=sess"}, user="bob")
    assert csrf.check(bob, {"csrf": token}) is not None
    evil = _request(
        headers={"cookie": f"{SESSION_COOKIE}=sess", "host": "h", "origin": "https://evil"},
        user="alice",
    )
    assert "another site" in (csrf.check(evil, {"csrf": token}) or "")


def test_without_authorize_it_refuses_to_start() -> None:
    """No authorize= and no debug: an error saying how to fix it."""
    with pytest.raises(Unprotected, match="authorize="):
        Dashboard(str(EXAMPLE))


def test_debug_mode_answers_loopback_only() -> None:
    """debug=True without a callback serves 127.0.0.1 and ::1, and refuses anyone else."""
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.1.2.3")
    assert not is_loopback("")
    assert who(_request(remote_addr="127.0.0.1"), None) == "debug@localhost"
    assert who(_request(remote_addr="192.168.1.9"), None) is None


def test_a_failing_callback_refuses() -> None:
    """A callback that raises or returns None/False refuses the request."""

    def boom(request: Request) -> str:
        raise RuntimeError("auth backend down")

    assert who(_request(), boom) is None
    assert who(_request(), lambda r: False) is None
    assert who(_request(), lambda r: "carol") == "carol"


def test_explain_prints_the_rule_in_words(tmp_path: Path) -> None:
    """`rampup explain` (a subprocess) prints the matched rule's summary and the same words the
    dashboard shows."""
    done = subprocess.run(
        [sys.executable, "-m", "rampup", "explain", str(EXAMPLE), "new-checkout", "--id", "x"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    snap = load(example_doc())
    words = rule_words(snap.flags["new-checkout"].rules[2])
    assert words in done.stdout
    assert "rule      #2: then everyone, ramped" in done.stdout


def test_bench_dashboard_quick_smoke() -> None:
    """The benchmark renders a page of every flag and prints the target line (figures not
    checked: the machine is shared)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_dashboard.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--flags", "60"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "target: list page of 1,000 flags < 300 ms" in done.stdout
