"""Evaluation: rule order, segments, kill switch, ramps, unknown flags, errors, overrides."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rampup
from rampup import Decision, Reason, Snapshot, Subject
from rampup.bucketing import bucket
from rampup.model import Flag, Variant


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Epoch seconds of a UTC date-time."""
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp()


def one_flag(**fields: Any) -> Snapshot:
    """A snapshot with one flag ``f`` and the segments ``qa`` and ``staff``."""
    return rampup.load(
        {
            "segments": {
                "qa": {"keys": ["qa-1", "qa-2"]},
                "staff": {
                    "conditions": [
                        {"attribute": "email", "op": "ends_with", "value": "@example.com"}
                    ]
                },
                "both": {
                    "keys": ["vip"],
                    "conditions": [{"attribute": "plan", "op": "equals", "value": "pro"}],
                },
            },
            "flags": {"f": fields},
        }
    )


def test_default_when_no_rule_matches() -> None:
    """No rule matching: the default variant, reason DEFAULT, no rule index."""
    snap = one_flag(rules=[{"segments": ["qa"], "serve": "on"}])
    d = snap.evaluate("f", Subject("someone"))
    assert d == Decision("f", "off", False, Reason.DEFAULT, None)
    assert not d.enabled


def test_first_matching_rule_wins() -> None:
    """Rules are tried in order; the first that matches decides, later ones are not used."""
    snap = one_flag(
        variants=["a", "b", "c"],
        default="c",
        rules=[
            {"segments": ["qa"], "serve": "a"},
            {"segments": ["staff"], "serve": "b"},
            {"serve": "c"},
        ],
    )
    qa_staff = Subject("qa-1", {"email": "q@example.com"})
    assert snap.evaluate("f", qa_staff) == Decision("f", "a", "a", Reason.RULE_MATCH, 0)
    staff = Subject("s", {"email": "s@example.com"})
    assert snap.evaluate("f", staff) == Decision("f", "b", "b", Reason.RULE_MATCH, 1)
    assert snap.evaluate("f", Subject("x")) == Decision("f", "c", "c", Reason.RULE_MATCH, 2)


def test_segment_by_keys() -> None:
    """A segment of listed keys holds for exactly those subject keys."""
    snap = one_flag(rules=[{"segments": ["qa"], "serve": "on"}])
    assert snap.evaluate("f", Subject("qa-2")).variant == "on"
    assert snap.evaluate("f", Subject("qa-3")).variant == "off"
    assert snap.evaluate("f", Subject(None)).variant == "off"


def test_segment_by_conditions() -> None:
    """A segment of conditions holds for subjects whose attributes meet them."""
    snap = one_flag(rules=[{"segments": ["staff"], "serve": "on"}])
    assert snap.evaluate("f", Subject("u", {"email": "a@example.com"})).enabled
    assert not snap.evaluate("f", Subject("u", {"email": "a@example.org"})).enabled
    assert not snap.evaluate("f", Subject("u")).enabled


def test_segment_keys_or_conditions() -> None:
    """A segment with keys and conditions holds for a listed key OR matching conditions."""
    snap = one_flag(rules=[{"segments": ["both"], "serve": "on"}])
    assert snap.evaluate("f", Subject("vip")).enabled
    assert snap.evaluate("f", Subject("u", {"plan": "pro"})).enabled
    assert not snap.evaluate("f", Subject("u", {"plan": "free"})).enabled


def test_rule_segments_and_conditions_all_hold() -> None:
    """A rule's segments and conditions are ANDed."""
    snap = one_flag(
        rules=[
            {
                "segments": ["staff"],
                "conditions": [{"attribute": "role", "op": "in", "value": ["admin"]}],
                "serve": "on",
            }
        ]
    )
    assert snap.evaluate("f", Subject("u", {"email": "a@example.com", "role": "admin"})).enabled
    assert not snap.evaluate("f", Subject("u", {"email": "a@example.com", "role": "dev"})).enabled
    assert not snap.evaluate("f", Subject("u", {"role": "admin"})).enabled


def test_rule_segment_as_single_string() -> None:
    """`segments = "qa"` is accepted as a one-element list."""
    snap = one_flag(rules=[{"segments": "qa", "serve": "on"}])
    assert snap.evaluate("f", Subject("qa-1")).enabled


def test_kill_switch_serves_off() -> None:
    """A killed flag serves `off` to everyone, whatever its rules, with reason KILLED."""
    snap = one_flag(killed=True, default="on", rules=[{"serve": "on"}])
    for subject in (Subject("qa-1"), Subject(None), Subject("u", {"email": "a@example.com"})):
        assert snap.evaluate("f", subject) == Decision("f", "off", False, Reason.KILLED)


def test_kill_switch_without_off_serves_default() -> None:
    """A killed flag without an `off` variant serves its default."""
    snap = one_flag(
        variants={"blue": 1, "green": 2}, default="blue", killed=True, rules=[{"serve": "green"}]
    )
    assert snap.evaluate("f", Subject("u")) == Decision("f", "blue", 1, Reason.KILLED)


def test_kill_switch_beats_override() -> None:
    """An override cannot bring back a killed flag."""
    snap = one_flag(killed=True)
    assert snap.evaluate("f", Subject("u"), override="on").reason is Reason.KILLED
    assert "killed" in (snap.override_refusal("f", "on") or "")


RAMP = [
    {"from": "2026-12-01T09:00:00Z", "split": {"on": 1, "off": 99}},
    {"from": "2026-12-03", "split": {"on": 10, "off": 90}},
    {"from": "2026-12-10", "split": {"on": 100, "off": 0}},
]


def test_ramp_follows_the_clock() -> None:
    """A ramp serves the step in force at `now`: 1 %, then 10 %, then everyone."""
    snap = one_flag(rules=[{"ramp": RAMP}])
    keys = [f"user-{i}" for i in range(3_000)]

    def share(now: float) -> float:
        return sum(snap.evaluate("f", Subject(k), now).enabled for k in keys) / len(keys)

    assert share(ts(2026, 12, 1, 9)) < 0.03  # the first step starts exactly at its time
    assert 0.07 < share(ts(2026, 12, 3)) < 0.13
    assert share(ts(2026, 12, 9, 23, 59)) < 0.13
    assert share(ts(2026, 12, 10)) == 1.0
    assert share(ts(2030, 1, 1)) == 1.0
    d = snap.evaluate("f", Subject("user-1"), ts(2026, 12, 5))
    assert d.reason is Reason.SPLIT
    assert d.rule_index == 0
    assert d.enabled == (bucket("f", "user-1") < 1_000)


def test_before_first_step_rule_falls_through() -> None:
    """Before a ramp's first step its rule does not apply: the next rule or the default decides."""
    snap = one_flag(
        variants=["a", "b", "c"],
        default="c",
        rules=[
            {"ramp": [{"from": "2026-12-01", "split": {"a": 100, "b": 0}}]},
            {"segments": ["qa"], "serve": "b"},
        ],
    )
    early = ts(2026, 11, 30, 23, 59)
    assert snap.evaluate("f", Subject("qa-1"), early) == Decision(
        "f", "b", "b", Reason.RULE_MATCH, 1
    )
    assert snap.evaluate("f", Subject("u"), early) == Decision("f", "c", "c", Reason.DEFAULT)
    assert snap.evaluate("f", Subject("u"), ts(2026, 12, 1)).variant == "a"


def test_ramp_without_now_uses_the_clock() -> None:
    """Without `now`, the real clock picks the step (these dates are long past or far ahead)."""
    past = one_flag(rules=[{"ramp": [{"from": "2000-01-01", "split": {"on": 100, "off": 0}}]}])
    assert past.evaluate("f", Subject("u")).reason is Reason.SPLIT
    future = one_flag(rules=[{"ramp": [{"from": "2999-01-01", "split": {"on": 100, "off": 0}}]}])
    assert future.evaluate("f", Subject("u")).reason is Reason.DEFAULT


def test_no_key_split_stops_at_the_split_rule() -> None:
    """A keyless subject reaching a split rule gets the default, with that rule's index."""
    snap = one_flag(rules=[{"split": {"on": 100, "off": 0}}, {"serve": "on"}])
    d = snap.evaluate("f", Subject(None))
    assert (d.variant, d.reason, d.rule_index) == ("off", Reason.DEFAULT, 0)
    assert d.detail


def test_unknown_flag(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown key never raises: UNKNOWN_FLAG, no variant, logged once per key."""
    snap = one_flag()
    key, other = f"nope-{uuid.uuid4()}", f"nope-{uuid.uuid4()}"
    with caplog.at_level(logging.WARNING, logger="rampup"):
        for _ in range(3):
            d = snap.evaluate(key, Subject("u"))
            assert d == Decision(key, None, None, Reason.UNKNOWN_FLAG)
            assert not d.enabled
        snap.evaluate(other, Subject("u"))
    logged = [r.getMessage() for r in caplog.records if r.name == "rampup"]
    assert sum(key in m for m in logged) == 1
    assert sum(other in m for m in logged) == 1
    assert "not defined" in logged[0]


def test_unknown_flag_with_override_is_still_unknown() -> None:
    """An override for a flag that does not exist does not invent it."""
    d = one_flag().evaluate(f"nope-{uuid.uuid4()}", Subject("u"), override="on")
    assert d.reason is Reason.UNKNOWN_FLAG


class _RaisingAttributes(dict[str, Any]):
    """Subject attributes that raise on lookup (a lazy attribute store that is down)."""

    def get(self, name: str, default: Any = None) -> Any:
        raise ZeroDivisionError("attribute store down")

    __getitem__ = get


def test_failing_evaluation_gives_error_decision(caplog: pytest.LogCaptureFixture) -> None:
    """A rule that raises while deciding yields the default variant with reason ERROR,
    logged; other subjects are served as usual."""
    cond = {"attribute": "plan", "op": "equals", "value": "pro"}
    snap = one_flag(
        variants={"a": "A", "b": "B"}, default="b", rules=[{"conditions": [cond], "serve": "a"}]
    )
    with caplog.at_level(logging.ERROR, logger="rampup"):
        d = snap.evaluate("f", Subject("u", _RaisingAttributes()))
    assert (d.key, d.variant, d.value, d.reason) == ("f", "b", "B", Reason.ERROR)
    assert "ZeroDivisionError" in d.detail
    assert any("'f'" in r.getMessage() and r.exc_info for r in caplog.records)
    assert snap.evaluate("f", Subject("u", {"plan": "pro"})).variant == "a"


def test_subject_callable_is_resolved_only_when_needed() -> None:
    """evaluate() takes the subject as a callable too; it is called only when the rules need a
    subject, and its failure is an ERROR decision like any other."""
    calls: list[int] = []

    def subject() -> Subject:
        calls.append(1)
        return Subject("qa-1")

    snap = one_flag(rules=[SEG_SERVE])
    assert snap.evaluate("f", subject).variant == "on"
    assert snap.evaluate("f", subject, override="off").variant == "off"  # override: no subject
    assert calls == [1]

    def broken() -> Subject:
        raise LookupError("no session")

    assert snap.evaluate("f", broken).reason is Reason.ERROR


def test_failing_predicate_gives_error_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """A condition compiled to a predicate that raises also yields ERROR, never an exception."""
    from rampup import engine, operators

    def exploding(cond: Any, where: str = "") -> Any:
        def p(s: Subject) -> bool:
            raise RuntimeError("predicate failed")

        return p

    monkeypatch.setattr(engine, "compile_condition", exploding)
    monkeypatch.setattr(operators, "compile_condition", exploding)
    snap = one_flag(rules=[{"conditions": [{"attribute": "a", "op": "exists"}], "serve": "on"}])
    d = snap.evaluate("f", Subject("u", {"a": 1}))
    assert (d.variant, d.reason) == ("off", Reason.ERROR)
    assert "predicate failed" in d.detail


def test_override_honoured() -> None:
    """An override of an overridable, live flag to a known variant wins over the rules."""
    snap = one_flag(variants=["a", "b"], default="a", rules=[{"serve": "a"}])
    assert snap.evaluate("f", Subject("u"), override="b") == Decision(
        "f", "b", "b", Reason.OVERRIDE
    )
    assert snap.override_refusal("f", "b") is None


def test_override_unknown_variant_ignored() -> None:
    """An override naming no variant of the flag is ignored: rules decide."""
    snap = one_flag(variants=["a", "b"], default="a", rules=[{"serve": "a"}])
    d = snap.evaluate("f", Subject("u"), override="c")
    assert (d.variant, d.reason) == ("a", Reason.RULE_MATCH)
    assert "unknown variant" in (snap.override_refusal("f", "c") or "")


def test_override_not_overridable_ignored() -> None:
    """A flag with overridable = false ignores overrides."""
    snap = one_flag(overridable=False)
    assert snap.evaluate("f", Subject("u"), override="on").reason is Reason.DEFAULT
    assert snap.override_refusal("f", "on") == "flag is not overridable"
    assert snap.override_refusal("nope", "on") == "unknown flag"


def test_decisions_are_prebuilt_and_immutable() -> None:
    """The same outcome returns the same frozen Decision object; it cannot be changed."""
    snap = one_flag(rules=[{"segments": ["qa"], "serve": "on"}])
    a, b = snap.evaluate("f", Subject("qa-1")), snap.evaluate("f", Subject("qa-2"))
    assert a is b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.variant = "off"  # type: ignore[misc]


def test_snapshot_is_immutable() -> None:
    """A snapshot's flags and segments cannot be changed after load."""
    snap = one_flag()
    with pytest.raises(TypeError):
        snap.flags["g"] = snap.flags["f"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.origin = "x"  # type: ignore[misc]
    assert len(snap) == 1


def test_attributes_mapping_is_not_mutated() -> None:
    """Evaluation only reads the subject's attributes."""
    attrs = {"email": "a@example.com"}
    one_flag(rules=[{"segments": ["staff"], "serve": "on"}]).evaluate("f", Subject("u", attrs))
    assert attrs == {"email": "a@example.com"}


def test_is_boolean_with_unhashable_values() -> None:
    """Flag.is_boolean works for any variant values (lists included) and is not fooled by 1/0."""
    listy = Flag("f", (Variant("a", [1]), Variant("b", [2])), "a")
    assert not listy.is_boolean
    ints = Flag("f", (Variant("on", 1), Variant("off", 0)), "off")
    assert not ints.is_boolean
    assert Flag("f", (Variant("on", True), Variant("off", False)), "off").is_boolean


def test_example_story(example: Snapshot) -> None:
    """The example file: QA first, then staff, then a ramp; a killed flag; a multivariate one."""
    before = ts(2026, 11, 1)
    qa = Subject("qa-alice")
    staff = Subject("u1", {"email": "bob@example.com"})
    anyone = Subject("u2", {"email": "c@gmail.com"})
    assert example.evaluate("new-checkout", qa, before).rule_index == 0
    assert example.evaluate("new-checkout", staff, before).rule_index == 1
    assert example.evaluate("new-checkout", anyone, before).reason is Reason.DEFAULT
    assert example.evaluate("new-checkout", anyone, ts(2026, 12, 11)).enabled
    assert example.evaluate("recommendations", staff).reason is Reason.KILLED
    beta = Subject("u3", {"beta": True, "app_version": "4.2.0"})
    assert example.evaluate("checkout-button", beta).value == "#2da44e"
    assert example.evaluate("dark-mode", anyone).enabled
    admin = Subject("u4", {"email": "a@example.com", "role": "admin"})
    assert example.evaluate("admin-panel", admin).enabled
    assert not example.evaluate("admin-panel", staff).enabled


# -- compiled shapes against a plain reading of the rules ---------------------------------------


def _reference(snap: Snapshot, key: str, s: Subject, now: float) -> tuple[str, Reason, Any]:
    """What the flag file says, read rule by rule with no compilation tricks:
    (variant, reason, rule index)."""
    from rampup.engine import compile_segment
    from rampup.operators import compile_condition

    flag = snap.flags[key]
    if flag.killed:
        return flag.off_variant, Reason.KILLED, None
    order = [v.name for v in flag.variants]
    for i, rule in enumerate(flag.rules):
        preds = [compile_segment(snap.segments[n]) for n in rule.segments]
        preds += [compile_condition(c) for c in rule.conditions]
        if not all(p(s) for p in preds):
            continue
        if rule.serve is not None:
            return rule.serve, Reason.RULE_MATCH, i
        assert rule.split is not None
        weights = rule.split.weights
        if rule.split.ramp:
            steps = [st for st in rule.split.ramp if st.start.timestamp() <= now]
            if not steps:
                continue
            weights = steps[-1].weights
        by = s.key if rule.split.bucket_by == "key" else s.attributes.get(rule.split.bucket_by)
        if by is None or by == "":
            return flag.default, Reason.DEFAULT, i
        b = bucket(flag.salt or flag.key, str(by))
        total = 0
        for name, w in sorted(weights, key=lambda nw: order.index(nw[0])):
            total += w
            if w > 0 and b < total:
                return name, Reason.SPLIT, i
    return flag.default, Reason.DEFAULT, None


SEG_SERVE = {"segments": ["qa"], "serve": "on"}
STAFF_SERVE = {"segments": ["staff"], "serve": "on"}
SPLIT_30 = {"split": {"on": 30, "off": 70}}
SPLIT_3 = {"split": {"a": 20, "b": 30, "c": 50}}
PLAN_SPLIT = {"conditions": [{"attribute": "plan", "op": "equals", "value": "pro"}], **SPLIT_30}
BY_ORG = {"split": {"on": 50, "off": 50}, "bucket_by": "org"}
PLAN_RAMP = {"conditions": PLAN_SPLIT["conditions"], "ramp": RAMP}
SHAPES: list[list[dict[str, Any]]] = [
    [],
    [{"serve": "on"}],
    [SPLIT_30],
    [{"ramp": RAMP}],
    [SEG_SERVE],
    [PLAN_SPLIT],
    [SEG_SERVE, SPLIT_30],
    [SEG_SERVE, {"ramp": RAMP}],
    [SPLIT_30, {"serve": "on"}],
    [{"ramp": RAMP}, {"serve": "on"}],
    [SEG_SERVE, STAFF_SERVE, PLAN_SPLIT],
    [SEG_SERVE, STAFF_SERVE, SPLIT_30],
    [BY_ORG],
    [SEG_SERVE, BY_ORG],
    [PLAN_SPLIT, SPLIT_30],
    [PLAN_RAMP, {"serve": "on"}],
    [PLAN_RAMP, SPLIT_30],
]
SUBJECTS = [
    Subject("qa-1"),
    Subject("u-1", {"email": "a@example.com"}),
    Subject("u-2", {"plan": "pro", "org": "acme"}),
    Subject(None, {"plan": "pro"}),
    Subject(""),
    Subject("edge-4073"),  # bucket 3000 for salt "f": the first one past a 30 % split
    Subject("edge-9472"),  # bucket 2999: the last one inside it
    *(
        Subject(f"user-{i}", {"plan": "pro" if i % 2 else "free", "org": f"o{i % 7}"})
        for i in range(60)
    ),
]


@pytest.mark.parametrize("rules", SHAPES, ids=lambda r: "+".join(map(str, r)) or "no rules")
@pytest.mark.parametrize("killed", [False, True])
def test_compiled_flag_agrees_with_the_rules(rules: list[dict[str, Any]], killed: bool) -> None:
    """Each subject gets what a plain reading of the rules says, at any time, for every
    shape of flag (constant decisions included)."""
    snap = one_flag(rules=rules, killed=killed)
    for now in (ts(2026, 11, 1), ts(2026, 12, 3), ts(2027, 1, 1)):
        for s in SUBJECTS:
            d = snap.evaluate("f", s, now)
            assert (d.variant, d.reason, d.rule_index) == _reference(snap, "f", s, now), s


@pytest.mark.parametrize(
    "rules",
    [[SPLIT_3], [{"segments": ["qa"], "serve": "b"}, SPLIT_3], [{**SPLIT_3, "bucket_by": "org"}]],
)
def test_three_way_shapes_agree_with_the_rules(rules: list[dict[str, Any]]) -> None:
    """Splits over more than two variants take the general path; same answers."""
    snap = one_flag(variants=["a", "b", "c"], default="a", rules=rules)
    for s in SUBJECTS:
        d = snap.evaluate("f", s, ts(2027, 1, 1))
        assert (d.variant, d.reason, d.rule_index) == _reference(snap, "f", s, ts(2027, 1, 1))


def test_constant_flags_need_no_subject() -> None:
    """A flag no subject can change (no rules, one variant for everyone, killed) is decided
    without calling the subject callable, and serves what its rules say; flags that depend on
    the subject call it."""
    snap = rampup.load(
        {
            "segments": {"qa": {"keys": ["qa-1"]}},
            "flags": {
                "plain": {},
                "on-for-all": {"rules": [{"serve": "on"}, SPLIT_30]},
                "killed": {"killed": True, "rules": [SPLIT_30]},
                "split": {"rules": [SPLIT_30]},
                "segment": {"rules": [SEG_SERVE]},
                "ramp": {"rules": [{"ramp": RAMP}]},
            },
        }
    )
    called: list[str] = []

    def subject_for(key: str) -> Any:
        def resolve() -> Subject:
            called.append(key)
            return SUBJECTS[0]

        return resolve

    for key in snap.flags:
        d = snap.evaluate(key, subject_for(key), ts(2027, 1, 1))
        assert d == snap.evaluate(key, SUBJECTS[0], ts(2027, 1, 1))
    assert called == ["split", "segment", "ramp"]


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=40) | st.sampled_from(["\ud800", "a\udfffb", "ü-42"]))
def test_on_off_split_buckets_exactly_like_bucket(key: str) -> None:
    """The engine's on/off split by key serves "on" exactly when bucket() is under the bound,
    for any key, lone surrogates included (hashed with surrogatepass)."""
    snap = one_flag(rules=[SPLIT_30])
    d = snap.evaluate("f", Subject(key))
    assert d.reason is Reason.SPLIT
    assert d.variant == ("on" if bucket("f", key) < 3000 else "off")
