"""Flags and rules in words, for people: what ``rampup explain`` prints and the dashboard shows.

Nothing here names a subject: a condition on the subject key (or another identifying attribute,
:data:`IDENTIFYING`) and a segment's listed keys are shown as counts ("one of 3 listed ids"), so
the text can go on a shared page or into a log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .model import BUCKETS, Condition, Flag, Rule, Segment, Split
from .rollout import describe

__all__ = [
    "IDENTIFYING",
    "condition_words",
    "current_weights",
    "next_ramp_step",
    "rule_summary",
    "rule_words",
    "segment_words",
]

#: attributes whose values identify a subject: shown as a count, never as values
IDENTIFYING = frozenset({"key", "id", "user_id", "user", "email", "subject"})

_OPS = {
    "equals": "is",
    "not_equals": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "contains": "contains",
    "matches": "matches",
    "regex": "matches",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "semver_eq": "is version",
    "semver_lt": "is a version before",
    "semver_lte": "is a version up to",
    "semver_gt": "is a version after",
    "semver_gte": "is a version from",
}


def rule_summary(rule: Rule) -> str:
    """The rule in a few words: its description, else its segments, else "conditions" or
    "everyone" (the ``rule`` line of ``rampup explain``)."""
    return (
        rule.description
        or ", ".join(rule.segments)
        or ("conditions" if rule.conditions else "everyone")
    )


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def condition_words(c: Condition) -> str:
    """``email ends with "@example.com"``; identifying attributes only as a count."""
    if c.op == "exists":
        return f"{c.attribute} is {'set' if c.value in (None, True) else 'not set'}"
    op = _OPS.get(c.op, c.op)
    if c.attribute in IDENTIFYING and not c.op.startswith(("ends_with", "semver")):
        n = len(c.value) if isinstance(c.value, list | tuple) else 1
        return f"{c.attribute} {op} {n} listed value{'s' if n != 1 else ''} (hidden)"
    if isinstance(c.value, list | tuple):
        return f"{c.attribute} {op} " + ", ".join(_value(v) for v in c.value)
    return f"{c.attribute} {op} {_value(c.value)}"


def segment_words(seg: Segment) -> str:
    """``2 listed ids, or email ends with "@qa.example.com"``: who a segment holds."""
    parts = []
    if seg.keys:
        parts.append(f"{len(seg.keys)} listed id{'s' if len(seg.keys) != 1 else ''}")
    if seg.conditions:
        parts.append(" and ".join(condition_words(c) for c in seg.conditions))
    return ", or ".join(parts) or "nobody"


def _weights(weights: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {w * 100 / BUCKETS:g} %" for name, w in weights)


def _when(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def current_weights(split: Split, now: datetime | None = None) -> tuple[tuple[str, int], ...]:
    """The split's weights in force at ``now`` (a ramp's current step; () before it starts)."""
    if not split.ramp:
        return split.weights
    now = now or datetime.now(timezone.utc)
    current: tuple[tuple[str, int], ...] = ()
    for step in split.ramp:
        if _aware(step.start) <= now:
            current = step.weights
    return current


def next_ramp_step(split: Split, now: datetime | None = None) -> str | None:
    """What a ramp waits for: ``on 10 % from 2026-12-03 00:00 UTC``, None when done."""
    now = now or datetime.now(timezone.utc)
    for step in split.ramp:
        if _aware(step.start) > now:
            return f"{_weights(step.weights)} from {_when(step.start)}"
    return None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def rule_words(rule: Rule, flag: Flag | None = None) -> str:
    """The whole rule in one line: ``if segment qa and country is "DE": serve on``."""
    when = [f"segment {s}" for s in rule.segments]
    when += [condition_words(c) for c in rule.conditions]
    cond = ("if " + " and ".join(when)) if when else "everyone"
    if rule.rollout is not None:
        what = "guarded rollout, " + describe(rule.rollout)
    elif rule.split is not None and rule.split.ramp:
        steps = "; ".join(f"{_weights(s.weights)} from {_when(s.start)}" for s in rule.split.ramp)
        what = f"ramp: {steps}"
    elif rule.split is not None:
        what = f"split {_weights(rule.split.weights)}"
    else:
        what = f"serve {rule.serve}"
    if rule.split is not None and rule.split.bucket_by != "key":
        what += f" (sticky by {rule.split.bucket_by})"
    return f"{cond}: {what}"
