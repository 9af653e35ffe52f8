"""Guarded rollouts in the flag file: parse a ``rollout`` rule, and move a flag between stages.

A rollout rule is a split whose weights come from its current stage::

    [[flags.new-checkout.rules]]
    rollout = { stages = [1, 5, 25, 50, 100], stage = 0, hold = "30m",
                guard = { errors = true, latency = "p99", alpha = 0.01 } }

The loader (``config.py``) calls :func:`parse_rollout` and stores both the :class:`Rollout`
and the stage's :class:`Split` on the rule, so the engine evaluates it as any fixed split: a
pure function of (snapshot, subject, clock). Buckets stay monotonic because a split always
lays its variants out in the flag's variant order (see ``engine._split_table``): with two
variants one of them owns a range growing from one end, so nobody served the treatment at 1 %
flips back at 5 %. Only a store or the in-process guard (``rampup.guard``) changes ``stage``.
``held = true`` (written by an operator, e.g. the dashboard's Hold button) keeps the guard from
advancing; it still halts on evidence of harm.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Protocol

from .model import BUCKETS, Flag, Rollout, Rule, Split

__all__ = [
    "describe",
    "find_rollout",
    "parse_duration",
    "parse_rollout",
    "stage_split",
    "with_stage",
]

_ROLLOUT = {"stages", "stage", "hold", "held", "not_before", "guard", "treatment", "control"}
_GUARD = {"errors", "latency", "alpha", "min_requests"}
_LATENCY = {False: "", "mean": "mean", "p99": "p99", True: "both", "both": "both"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Reporter(Protocol):
    """The loader's reporting methods (``config._Loader``), passed in to locate problems."""

    def problem(self, path: list[str | int], message: str, hint: str = "") -> None: ...

    def unknown_fields(
        self, path: list[str | int], table: Mapping[str, Any], known: set[str]
    ) -> None: ...

    def when(self, path: list[str | int], raw: Any) -> Any: ...


def parse_duration(raw: Any) -> float | None:
    """``"30m"``, ``"2h"``, ``"90s"``, ``"1d"`` or a number of seconds -> seconds, else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw) if raw >= 0 else None
    if isinstance(raw, str):
        m = _DURATION.match(raw)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    return None


def stage_split(rollout: Rollout, bucket_by: str = "key") -> Split:
    """The split serving the rollout's current stage: treatment its share, control the rest."""
    bp = round(rollout.share * 100)
    weights = ((rollout.treatment, bp), (rollout.control, BUCKETS - bp))
    return Split(tuple((n, w) for n, w in weights if w > 0), (), bucket_by)


def find_rollout(flag: Flag) -> tuple[int, Rollout] | None:
    """(rule index, rollout) of the flag's first rollout rule, or None."""
    for i, rule in enumerate(flag.rules):
        if rule.rollout is not None:
            return i, rule.rollout
    return None


def describe(rollout: Rollout) -> str:
    """One line for people: ``stage 2 of 5 (on 25 %, off the rest), hold 30m, guard on
    errors``."""
    checks = [c for c, on in (("errors", rollout.errors),) if on]
    if rollout.latency:
        checks.append(f"latency ({rollout.latency})")
    hold = f"{rollout.hold / 60:g}m" if rollout.hold % 60 == 0 else f"{rollout.hold:g}s"
    return (
        f"stage {rollout.stage} of {len(rollout.stages)} ({rollout.treatment} "
        f"{rollout.share:g} %, {rollout.control} the rest), hold {hold}, guard on "
        + (", ".join(checks) or "nothing")
        + f", alpha {rollout.alpha:g}"
        + (", held by an operator" if rollout.held else "")
    )


def with_stage(flag: Flag, stage: int) -> Flag:
    """The flag with its rollout rule moved to ``stage`` (its split re-weighted)."""
    found = find_rollout(flag)
    if found is None:
        raise ValueError(f"flag {flag.key!r} has no rollout rule")
    index, rollout = found
    if not 0 <= stage < len(rollout.stages):
        raise ValueError(f"stage {stage} out of range 0..{len(rollout.stages) - 1}")
    moved = dataclasses.replace(rollout, stage=stage)
    rule = flag.rules[index]
    by = rule.split.bucket_by if rule.split is not None else "key"
    new_rule: Rule = dataclasses.replace(rule, rollout=moved, split=stage_split(moved, by))
    rules = (*flag.rules[:index], new_rule, *flag.rules[index + 1 :])
    return dataclasses.replace(flag, rules=rules)


def parse_rollout(
    loader: _Reporter, path: list[str | int], raw: Any, names: set[str], on_off: bool
) -> Rollout | None:
    """Validate a ``rollout = {...}`` table; every problem goes to ``loader``, located."""
    if not isinstance(raw, Mapping):
        loader.problem(path, 'expects a table, e.g. { stages = [1, 5, 25, 100], hold = "30m" }')
        return None
    ok = True

    def bad(field: str | int | list[str | int], message: str, hint: str = "") -> None:
        nonlocal ok
        ok = False
        loader.problem([*path, *(field if isinstance(field, list) else [field])], message, hint)

    loader.unknown_fields(path, raw, _ROLLOUT)
    stages: list[float] = []
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        bad("stages", "expects a list of percentages, e.g. stages = [1, 5, 25, 50, 100]")
    else:
        for i, s in enumerate(raw_stages):
            if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s <= 100:
                bad(["stages", i], f"expects a percentage above 0 and at most 100, got {s!r}")
            elif abs(round(s * 100) - s * 100) > 1e-6:
                bad(["stages", i], f"{s} is finer than 0.01 %")
            elif stages and s <= stages[-1]:
                bad(["stages", i], f"{s} is not above the previous stage ({stages[-1]:g})")
            else:
                stages.append(float(s))
    stage = raw.get("stage", 0)
    if isinstance(stage, bool) or not isinstance(stage, int) or stage < 0:
        bad("stage", f"expects a stage index (0 for the first), got {stage!r}")
    elif isinstance(raw_stages, list) and stage >= len(raw_stages):
        bad("stage", f"{stage} is past the last stage", f"0 to {len(raw_stages) - 1}")
    held = raw.get("held", False)
    if not isinstance(held, bool):
        bad("held", f"expects true or false (true: an operator holds the stage), got {held!r}")
    hold = parse_duration(raw.get("hold", "30m"))
    if hold is None:
        bad("hold", f'expects a duration like "30m", "2h" or seconds, got {raw.get("hold")!r}')
    not_before = []
    nb = raw.get("not_before", [])
    if not isinstance(nb, list):
        bad("not_before", "expects a list of dates, one per stage (the earliest each may start)")
    else:
        if stages and len(nb) > len(stages):
            bad("not_before", f"{len(nb)} dates for {len(stages)} stages")
        for i, d in enumerate(nb):
            when = loader.when([*path, "not_before", i], d)
            if when is None:
                ok = False
            else:
                not_before.append(when)
    treatment = raw.get("treatment", "on" if on_off else None)
    control = raw.get("control", "off" if on_off else None)
    for field, value in (("treatment", treatment), ("control", control)):
        if value is None:
            bad(field, "missing", "name the variant this rollout " + _ROLE[field])
        elif not isinstance(value, str) or (names and value not in names):
            bad(field, f"{value!r} is not a variant of this flag", f"variants: {_list(names)}")
    if ok and treatment == control:
        bad("control", "is the same variant as the treatment")
    guard = raw.get("guard", {})
    errors, latency, alpha, min_requests = True, "", 0.01, 1000
    if not isinstance(guard, Mapping):
        bad("guard", 'expects a table, e.g. { errors = true, latency = "p99" }')
    else:
        loader.unknown_fields([*path, "guard"], guard, _GUARD)
        errors = guard.get("errors", True)
        if not isinstance(errors, bool):
            bad(["guard", "errors"], f"expects true or false, got {errors!r}")
        lat = guard.get("latency", False)
        if not isinstance(lat, bool | str) or lat not in _LATENCY:
            bad(
                ["guard", "latency"],
                f'expects false, "mean", "p99" or true (both), got {lat!r}',
            )
        else:
            latency = _LATENCY[lat]
        alpha = guard.get("alpha", 0.01)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
            bad(["guard", "alpha"], f"expects a number between 0 and 0.5, got {alpha!r}")
        min_requests = guard.get("min_requests", 1000)
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
            bad(["guard", "min_requests"], f"expects a whole number >= 0, got {min_requests!r}")
    if not ok or not stages or hold is None:
        return None
    return Rollout(
        tuple(stages),
        stage,
        str(treatment),
        str(control),
        hold,
        tuple(not_before),
        bool(errors),
        latency,
        float(alpha),
        int(min_requests),
        held,
    )


_ROLE = {"treatment": "ramps up", "control": "compares against (the rest of the traffic)"}


def _list(names: set[str]) -> str:
    return ", ".join(sorted(names))
