"""What the dashboard does, through the store's compare-and-set writes: kill, unkill, roll back,
advance, hold or release a guarded stage. Every input is validated first; every write is an
audit entry.

The audit entry is the store's own history record (who: ``by``, when: ``updated_at``, what: the
diff and the reason's prefix, why: the reason), so the CLI's ``rampup history`` shows it too; it
is also logged on the ``rampup.dashboard`` logger. **Hold** sets ``held = true`` in the flag's
rollout: the guard keeps watching and still halts on harm, but does not advance until a
**Release** removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError

__all__ = ["MAX_REASON", "Invalid", "Outcome", "advance", "hold", "kill", "rollback", "unkill"]

log = logging.getLogger("rampup.dashboard")

#: the longest reason accepted (characters)
MAX_REASON = 500


class Invalid(ValueError):
    """An input the dashboard refuses (400), with a message for the person who sent it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A write done: the new version and a sentence for the page."""

    version: int
    message: str


def reason_of(form: Mapping[str, str], required: bool) -> str:
    """The form's reason, stripped, length-capped, printable."""
    reason = " ".join(form.get("reason", "").split())
    if len(reason) > MAX_REASON:
        raise Invalid(f"the reason is {len(reason)} characters; at most {MAX_REASON}")
    if required and not reason:
        raise Invalid("say why (the reason is recorded in the history for whoever comes next)")
    return reason


def int_of(form: Mapping[str, str], name: str) -> int:
    """A whole number field (a version, a stage)."""
    raw = form.get(name, "").strip()
    if not raw.isdigit() or len(raw) > 12:
        raise Invalid(f"{name} must be a whole number, got {raw[:20]!r}")
    return int(raw)


def _by(user: str) -> str:
    return f"{user} (dashboard)"


def _audit(user: str, what: str, reason: str, version: int) -> None:
    log.info("rampup.dashboard: %s by %s -> v%d: %s", what, user, version, reason or "-")


def kill(store: Any, key: str, reason: str, user: str) -> Outcome:
    """Kill ``key`` everywhere (compare-and-set, retried on a concurrent write)."""
    doc = store.kill(key, reason=f"kill {key}: {reason}", by=_by(user))
    _audit(user, f"kill {key}", reason, doc.version)
    return Outcome(doc.version, f"{key} killed (v{doc.version}): it serves its off variant")


def unkill(store: Any, key: str, reason: str, user: str) -> Outcome:
    """Lift ``key``'s kill switch."""
    doc = store.unkill(
        key, reason=f"unkill {key}: {reason}" if reason else f"unkill {key}", by=_by(user)
    )
    _audit(user, f"unkill {key}", reason, doc.version)
    return Outcome(doc.version, f"{key}: kill switch lifted (v{doc.version})")


def rollback(store: Any, version: int, reason: str, user: str) -> Outcome:
    """Push ``version`` again as a new version (``expect``: the live one)."""
    doc = store.rollback(version, reason=reason, by=_by(user))
    _audit(user, f"rollback to v{version}", reason, doc.version)
    return Outcome(doc.version, f"rolled back to v{version}, now live as v{doc.version}")


def _rollout_of(data: dict[str, Any], key: str) -> dict[str, Any]:
    """The guarded rollout of flag ``key`` in a store document (the mapping to edit in place)."""
    flag = (data.get("flags") or {}).get(key)
    if not isinstance(flag, dict):
        raise StoreError(f"no flag {key!r} in the store's document")
    for rule in flag.get("rules") or []:
        rollout = rule.get("rollout") if isinstance(rule, dict) else None
        if isinstance(rollout, dict):
            return rollout
    raise StoreError(f"{key} has no guarded rollout")


def advance(store: Any, key: str, expect_stage: int, reason: str, user: str) -> Outcome:
    """Move ``key``'s guarded rollout from ``expect_stage`` to the next stage; refused when the
    stage moved meanwhile (someone else, or the guard, got there first)."""

    def change(data: dict[str, Any]) -> dict[str, Any]:
        rollout = _rollout_of(data, key)
        stage = int(rollout.get("stage", 0))
        if stage != expect_stage:
            raise StoreError(
                f"{key} is at stage {stage} now, not {expect_stage}: reload the page and look again"
            )
        if stage + 1 >= len(rollout.get("stages") or []):
            raise StoreError(f"{key} is at its last stage already")
        rollout["stage"] = stage + 1
        return data

    note = f"advance {key} to stage {expect_stage + 1}" + (f": {reason}" if reason else "")
    doc = store.update(change, reason=note, by=_by(user))
    _audit(user, f"advance {key}", reason, doc.version)
    return Outcome(doc.version, f"{key} advanced to stage {expect_stage + 1} (v{doc.version})")


def hold(store: Any, key: str, held: bool, reason: str, user: str) -> Outcome:
    """Hold (``held=True``) or release ``key``'s guarded rollout: sets or removes ``held`` in its
    rollout; refused when it is already so (someone else got there first)."""
    verb = "hold" if held else "release"

    def change(data: dict[str, Any]) -> dict[str, Any]:
        rollout = _rollout_of(data, key)
        if (rollout.get("held") is True) == held:
            now = "held" if held else "not held"
            raise StoreError(f"{key} is {now} already: reload the page and look again")
        if held:
            rollout["held"] = True
        else:
            rollout.pop("held", None)
        return data

    note = f"{verb} {key}" + (f": {reason}" if reason else "")
    doc = store.update(change, reason=note, by=_by(user))
    _audit(user, f"{verb} {key}", reason, doc.version)
    said = "held: the guard halts on harm but does not advance" if held else "released"
    return Outcome(doc.version, f"{key} {said} (v{doc.version})")
