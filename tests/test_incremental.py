"""Incremental reloads: ``load(doc, previous=old)`` and ``Snapshot.build(..., previous=old)``
decide exactly as a full build does, reuse the compiled flags that did not change, and
recompile the flags of a changed segment."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rampup
from rampup import Snapshot, Subject
from rampup.sources import FileSource

FLAGS = [f"f{i}" for i in range(5)]
SEGMENTS = ["qa", "staff", "beta"]
COUNTRIES = ["de", "fr", "us"]
PLANS = ["free", "pro"]

condition = st.sampled_from(
    [{"attribute": "country", "op": "equals", "value": c} for c in COUNTRIES]
    + [{"attribute": "plan", "op": "in", "value": PLANS[:1]}, {"attribute": "plan", "op": "exists"}]
)
segment = st.one_of(
    st.fixed_dictionaries(
        {"keys": st.lists(st.sampled_from(["u1", "u2", "u3"]), min_size=1, max_size=2)}
    ),
    st.fixed_dictionaries({"conditions": st.lists(condition, min_size=1, max_size=2)}),
)


@st.composite
def flag(draw: st.DrawFn) -> dict[str, Any]:
    """A boolean or three-variant flag (values may be 1 or True: they must not be confused)."""
    if draw(st.booleans()):
        names = ["on", "off"]
        out: dict[str, Any] = {}
    else:
        names = ["a", "b", "c"]
        out = {"variants": dict(zip(names, draw(st.permutations([1, True, "x"])), strict=True))}
    out["default"] = draw(st.sampled_from(names))
    rules = []
    for _ in range(draw(st.integers(0, 3))):
        rule: dict[str, Any] = {}
        segs = draw(st.lists(st.sampled_from(SEGMENTS), max_size=2, unique=True))
        if segs:
            rule["segments"] = segs
        conds = draw(st.lists(condition, max_size=1))
        if conds:
            rule["conditions"] = conds
        if draw(st.booleans()):
            rule["serve"] = draw(st.sampled_from(names))
        else:
            first = draw(st.integers(0, 100))
            rule["split"] = {names[0]: first, names[1]: 100 - first}
        rules.append(rule)
    if rules:
        out["rules"] = rules
    if draw(st.integers(0, 4)) == 0:
        out["killed"] = True
    return out


document = st.fixed_dictionaries(
    {
        "segments": st.fixed_dictionaries(dict.fromkeys(SEGMENTS, segment)),
        "flags": st.fixed_dictionaries({key: flag() for key in FLAGS}),
    }
)
subjects = st.lists(
    st.builds(
        lambda key, country, plan: Subject(
            key, {k: v for k, v in (("country", country), ("plan", plan)) if v is not None}
        ),
        st.one_of(st.none(), st.sampled_from(["u1", "u2", "u3"]), st.text(min_size=1, max_size=8)),
        st.one_of(st.none(), st.sampled_from(COUNTRIES)),
        st.one_of(st.none(), st.sampled_from(PLANS)),
    ),
    min_size=1,
    max_size=8,
)


def decisions(snapshot: Snapshot, people: list[Subject]) -> list[str]:
    """Every flag's decision for every subject; repr tells a value 1 from True."""
    return [repr(snapshot.evaluate(key, s)) for key in FLAGS for s in people]


@settings(max_examples=150, deadline=None)
@given(
    before=document,
    what=st.sampled_from(["flag", "segment", "kill"]),
    which=st.integers(0, 10),
    new_flag=flag(),
    new_segment=segment,
    people=subjects,
)
def test_an_incremental_reload_decides_as_a_full_load(
    before: dict[str, Any],
    what: str,
    which: int,
    new_flag: dict[str, Any],
    new_segment: dict[str, Any],
    people: list[Subject],
) -> None:
    """After a random one-flag or one-segment edit, the snapshot loaded with ``previous`` gives
    every subject the same decisions as a full load, and so does ``Snapshot.build``."""
    after = copy.deepcopy(before)
    if what == "flag":
        after["flags"][FLAGS[which % len(FLAGS)]] = new_flag
    elif what == "segment":
        after["segments"][SEGMENTS[which % len(SEGMENTS)]] = new_segment
    else:
        key = FLAGS[which % len(FLAGS)]
        after["flags"][key]["killed"] = not after["flags"][key].get("killed", False)
    old = rampup.load(before)
    full = rampup.load(after)
    incremental = rampup.load(after, previous=old)
    rebuilt = Snapshot.build(full.flags, full.segments, previous=old)
    expected = decisions(full, people)
    assert decisions(incremental, people) == expected
    assert decisions(rebuilt, people) == expected


def two_flags(**edits: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "segments": {"staff": {"keys": ["ann"]}, "qa": {"keys": ["bob"]}},
        "flags": {
            "banner": {"default": "on"},
            "checkout": {"default": "off", "rules": [{"segments": ["staff"], "serve": "on"}]},
            "search": {"default": "off", "rules": [{"segments": ["qa"], "serve": "on"}]},
        },
    }
    for key, value in edits.items():
        section, _, name = key.partition("__")
        doc[section][name] = value
    return doc


def test_unchanged_flags_keep_their_compiled_decisions() -> None:
    """A one-flag kill recompiles that flag only: the other flags keep the very Decision
    objects of the previous snapshot."""
    old = rampup.load(two_flags())
    new = rampup.load(two_flags(flags__checkout={"default": "off", "killed": True}), previous=old)
    assert new.constant("banner") is old.constant("banner")
    assert new.reused("banner", old)
    assert new.reused("search", old)
    assert not new.reused("checkout", old)
    assert new.evaluate("checkout", Subject("ann")).reason == rampup.Reason.KILLED


def test_without_previous_nothing_is_reused() -> None:
    """A full load compiles every flag afresh (the baseline the reuse is measured against)."""
    old = rampup.load(two_flags())
    new = rampup.load(two_flags())
    assert new.constant("banner") is not old.constant("banner")
    assert not any(new.reused(key, old) for key in new.flags)


def test_a_changed_segment_recompiles_the_flags_that_use_it() -> None:
    """Editing segment ``staff`` recompiles ``checkout`` (which uses it) and serves the new
    members, while ``search`` (segment ``qa``) keeps its compiled form."""
    old = rampup.load(two_flags())
    new = rampup.load(two_flags(segments__staff={"keys": ["cid"]}), previous=old)
    assert not new.reused("checkout", old)
    assert new.reused("search", old)
    assert new.reused("banner", old)
    assert new.evaluate("checkout", Subject("cid")).variant == "on"
    assert new.evaluate("checkout", Subject("ann")).variant == "off"


def test_a_value_that_only_compares_equal_is_recompiled() -> None:
    """A variant serving ``true`` instead of ``1`` compares equal as data but serves another
    value: the flag is recompiled, never served from the old Decisions."""
    doc = {"flags": {"n": {"variants": {"a": 1, "b": 2}, "default": "a"}}}
    old = rampup.load(doc)
    doc["flags"]["n"]["variants"]["a"] = True
    new = rampup.load(doc, previous=old)
    assert new.evaluate("n", Subject("x")).value is True
    rebuilt = Snapshot.build(new.flags, new.segments, previous=old)
    assert rebuilt.evaluate("n", Subject("x")).value is True


def test_an_invalid_edit_still_fails_with_previous() -> None:
    """``previous`` never lets an invalid document through: the edited flag is validated, and
    a segment removed under an unchanged flag fails the load."""
    old = rampup.load(two_flags())
    bad_flag = two_flags(flags__banner={"default": "maybe"})
    with pytest.raises(rampup.ConfigError, match="banner"):
        rampup.load(bad_flag, previous=old)
    no_staff = two_flags()
    del no_staff["segments"]["staff"]
    with pytest.raises(rampup.ConfigError, match="staff"):
        rampup.load(no_staff, previous=old)


def test_a_file_source_reload_recompiles_only_the_edited_flag(tmp_path: Path) -> None:
    """FileSource.reload() after a one-flag edit keeps the compiled form of the other flags."""
    path = tmp_path / "flags.toml"
    body = '[flags.banner]\ndefault = "on"\n\n[flags.checkout]\ndefault = "off"\n'
    path.write_text(body)
    source = FileSource(path, watch=False)
    old = source.snapshot
    path.write_text(body + "killed = true\n")
    assert source.reload() is True
    assert source.snapshot.flags["checkout"].killed
    assert source.snapshot.reused("banner", old)
    assert not source.snapshot.reused("checkout", old)
