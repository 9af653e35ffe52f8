"""What the pages show, as plain data: each flag's state in words, its kill record, what its
ramp or guarded stage waits for, and the search and filters of the list (all from the query
string, so they work without JavaScript)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..model import BUCKETS, Flag
from ..rollout import find_rollout
from ..rule_text import current_weights, next_ramp_step, rule_summary

__all__ = ["FILTERS", "FlagView", "KillRecord", "flag_view", "kill_records", "matches"]

#: the list's filters: name -> label
FILTERS = {
    "": "All",
    "killed": "Killed",
    "rollout": "In rollout",
    "stale": "Stale",
}


@dataclass(frozen=True, slots=True)
class KillRecord:
    """Who killed a flag, when and why (from the store's history)."""

    by: str
    at: float
    reason: str
    version: int


@dataclass(frozen=True, slots=True)
class FlagView:
    """One flag as the pages show it."""

    flag: Flag
    #: "killed", "rollout" (guarded stages), "ramp", "split", "rules", "constant"
    kind: str
    #: the stage or ramp step now, in words ("" when none)
    now: str = ""
    #: what it waits for ("" when nothing)
    waits: str = ""
    #: serves one variant to everyone: the code path can be cleaned up
    stale: bool = False
    kill: KillRecord | None = None
    badges: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """The flag key."""
        return self.flag.key


def _one_variant(weights: Sequence[tuple[str, int]]) -> bool:
    return any(w == BUCKETS for _, w in weights)


def flag_view(flag: Flag, kill: KillRecord | None = None, now: datetime | None = None) -> FlagView:
    """Classify ``flag`` and say where its rollout stands."""
    now = now or datetime.now(timezone.utc)
    found = find_rollout(flag)
    badges: list[str] = []
    kind, text, waits, stale = "constant", "", "", False
    if found is not None:
        _index, rollout = found
        kind = "rollout"
        text = (
            # the stage index as the flag file and `rampup guard status` give it (0: the first)
            f"stage {rollout.stage} of {len(rollout.stages)}: "
            f"{rollout.treatment} {rollout.share:g} %"
        )
        if rollout.held:
            badges.append("held")
            waits = "an operator's release (held by an operator; the guard still halts on harm)"
        elif rollout.stage + 1 < len(rollout.stages):
            nxt = rollout.stages[rollout.stage + 1]
            hold = f"{rollout.hold / 60:g} min" if rollout.hold >= 60 else f"{rollout.hold:g} s"
            waits = (
                f"the guard's evidence to advance to {nxt:g} % (at least {hold} in stage, "
                f"{rollout.min_requests:,} {rollout.treatment} requests)"
            )
        else:
            waits = "nothing: last stage reached"
            stale = rollout.share >= 100
    else:
        splits = [r.split for r in flag.rules if r.split is not None]
        ramps = [s for s in splits if s.ramp]
        if ramps:
            kind = "ramp"
            weights = current_weights(ramps[0], now)
            text = (
                "ramp not started"
                if not weights
                else "ramp at " + ", ".join(f"{n} {w * 100 / BUCKETS:g} %" for n, w in weights)
            )
            step = next_ramp_step(ramps[0], now)
            waits = f"the next step: {step}" if step else "nothing: last step reached"
            stale = step is None and _one_variant(weights) and len(flag.rules) == 1
        elif splits:
            kind = "split"
            text = "split " + ", ".join(
                f"{n} {w * 100 / BUCKETS:g} %" for n, w in splits[0].weights
            )
            stale = len(flag.rules) == 1 and _one_variant(splits[0].weights)
        elif flag.rules:
            kind = "rules"
            text = (
                "rules: "
                + "; ".join(f"{rule_summary(r)} → {r.serve}" for r in flag.rules[:3])
                + ("; …" if len(flag.rules) > 3 else "")
            )
            first = flag.rules[0]
            stale = not first.segments and not first.conditions  # one variant for everyone
        else:
            stale = True  # no rule: the default for everyone
    if kind in ("rollout", "ramp"):
        badges.insert(0, "rollout")
    if flag.killed:
        badges.insert(0, "killed")
        stale = False
    if stale:
        badges.append("stale")
    return FlagView(flag, kind, text, waits, stale, kill, tuple(badges))


def matches(view: FlagView, q: str, filt: str) -> bool:
    """True when the flag passes the search text (key or description) and the filter."""
    if filt and filt not in view.badges:
        return False
    if q:
        q = q.lower()
        return q in view.key.lower() or q in view.flag.description.lower()
    return True


def kill_records(history: Sequence[Any]) -> dict[str, KillRecord]:
    """For each flag killed in the newest version: the version that killed it (its author,
    time and reason). ``history`` is the store's, newest first."""
    out: dict[str, KillRecord] = {}
    if not history:
        return out
    live = history[0].killed()
    for i, doc in enumerate(history):
        older: frozenset[str] = history[i + 1].killed() if i + 1 < len(history) else frozenset()
        for key in doc.killed() & live:
            if key not in out and key not in older:
                # the dashboard records "kill KEY: why"; the page shows the why
                why = doc.reason.removeprefix(f"kill {key}: ")
                out[key] = KillRecord(doc.by, doc.updated_at, why, doc.version)
        live_rest = live - set(out)
        if not live_rest:
            break
    return out


def variant_value(value: Any) -> Mapping[str, Any]:
    """How to show a variant's value: ``{"text": ..., "colour": "#1f6feb" or None}``."""
    text = "true" if value is True else "false" if value is False else str(value)
    colour = None
    if isinstance(value, str) and _is_colour(value):
        colour = value
    return {"text": text, "colour": colour}


def _is_colour(v: str) -> bool:
    if len(v) in (4, 7, 9) and v.startswith("#"):
        return all(c in "0123456789abcdefABCDEF" for c in v[1:])
    return False
