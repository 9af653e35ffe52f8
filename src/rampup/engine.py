"""Compile flags into an immutable :class:`Snapshot` and evaluate them.

Every condition is compiled once into a predicate and every Decision a flag can return is
built ahead of time, so evaluating a flag is a dict lookup and one walk over its rules (see
:meth:`Snapshot.evaluate`): no parsing, no I/O, no locks, and a cost that does not depend on
how many flags the snapshot holds.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .bucketing import bucketer
from .model import Decision, Flag, Reason, Rule, Segment, Split, Subject
from .operators import ConditionFailed, Predicate, compile_condition

__all__ = ["Snapshot", "compile_segment", "unavailable_flag", "unknown_flag"]

log = logging.getLogger("rampup")


def _all_of(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    frozen = tuple(preds)

    return lambda s: all(p(s) for p in frozen)


def compile_segment(seg: Segment) -> Predicate:
    """A segment holds when the key is listed, or when every one of its conditions holds."""
    keys = seg.keys
    conds = (
        _all_of([compile_condition(c, f"segment {seg.name!r}") for c in seg.conditions])
        if seg.conditions
        else None
    )
    if keys and conds is not None:
        return lambda s: s.key in keys or conds(s)
    if keys:
        return lambda s: s.key in keys
    if conds is not None:
        return conds
    return lambda s: False  # an empty segment matches nobody, never everybody


def _split_table(
    flag: Flag, weights: tuple[tuple[str, int], ...], index: int, values: Mapping[str, Any]
) -> tuple[tuple[int, ...], tuple[Decision, ...]]:
    """Cumulative upper bounds, in the flag's variant order, with the Decision each range serves.

    A fixed order is what makes ramps monotonic: the first variant (``on`` for a boolean flag)
    owns buckets [0, w1) in every step, so a subject served it at 5 % is still served it at
    10 %. The order a split happens to list its weights in must not matter.
    """
    order = {v.name: i for i, v in enumerate(flag.variants)}
    bounds: list[int] = []
    decisions: list[Decision] = []
    total = 0
    for name, w in sorted(weights, key=lambda nw: order[nw[0]]):
        if w <= 0:
            continue
        total += w
        bounds.append(total)
        decisions.append(Decision(flag.key, name, values[name], Reason.SPLIT, index))
    return tuple(bounds), tuple(decisions)


class _Split:
    """A compiled split or ramp: the subject's bucket picks a Decision from the table in force."""

    __slots__ = ("bucket_by", "bucket_of", "no_key", "starts", "table", "tables")

    def __init__(self, flag: Flag, split: Split, index: int, values: Mapping[str, Any]) -> None:
        #: the attribute hashed, or None for the subject key
        self.bucket_by = None if split.bucket_by == "key" else split.bucket_by
        self.bucket_of = bucketer(flag.salt or flag.key)
        self.no_key = Decision(
            flag.key,
            flag.default,
            values[flag.default],
            Reason.DEFAULT,
            index,
            detail=f"rule {index} splits by {split.bucket_by!r}, which this subject lacks: "
            "default served",
        )
        #: a ramp's step start times (epoch seconds), with each step's table
        self.starts = [step.start.timestamp() for step in split.ramp]
        self.tables = [_split_table(flag, step.weights, index, values) for step in split.ramp]
        #: a fixed split's table; None for a ramp
        self.table = None if split.ramp else _split_table(flag, split.weights, index, values)

    def choose(self, s: Subject, now: float | None) -> Decision | None:
        """The Decision for ``s``, or None before a ramp's first step (the rule does not apply)."""
        table = self.table
        if table is None:
            i = bisect_right(self.starts, time.time() if now is None else now) - 1
            if i < 0:
                return None
            table = self.tables[i]
        by = self.bucket_by
        if by is None:
            k = s.key
            if not k:
                return self.no_key
        else:
            k = s.attributes.get(by)
            if k is None or k == "":
                return self.no_key
            if not isinstance(k, str):
                k = str(k)
        bounds, decisions = table
        # bounds are the ranges' exclusive upper ends, so this is the range holding the bucket
        return decisions[bisect_right(bounds, self.bucket_of(k))]


#: (prerequisite, variant required, the Decision when unmet, that Decision per variant served)
_Requirement = tuple[str, str, Decision, dict["str | None", Decision]]
#: (condition or None for "everyone", the Decision it serves, or the split that chooses one)
_CompiledRule = tuple["Predicate | None", "Decision | None", "_Split | None"]


class _CompiledFlag:
    """One flag, compiled: its rules (walked by :meth:`Snapshot.evaluate`) and its prebuilt
    Decisions. Built by :meth:`Snapshot.build`; never changed afterwards.
    """

    __slots__ = ("constant", "default", "overrides", "requires", "rules")

    def __init__(self, flag: Flag, segments: Mapping[str, Predicate]) -> None:
        values = {v.name: v.value for v in flag.variants}
        rules = [] if flag.killed else list(enumerate(flag.rules))
        self.rules: tuple[_CompiledRule, ...] = tuple(
            _compile_rule(flag, rule, i, segments, values) for i, rule in rules
        )
        if flag.killed:
            off = flag.off_variant
            self.default = Decision(flag.key, off, values[off], Reason.KILLED)
        else:
            self.default = Decision(flag.key, flag.default, values[flag.default], Reason.DEFAULT)
        #: the Decision no subject can change (killed, no rules, a first rule serving everyone
        #: one variant), else None: reading it needs no subject, so a request that reads only
        #: such flags resolves none and mints no anonymous id
        self.constant: Decision | None = None
        if not self.rules:
            self.constant = self.default
        elif self.rules[0][0] is None and self.rules[0][1] is not None:
            self.constant = self.rules[0][1]
        #: variant name -> the OVERRIDE Decision, for the variants an override may force
        self.overrides: dict[str, Decision] = (
            {v.name: Decision(flag.key, v.name, v.value, Reason.OVERRIDE) for v in flag.variants}
            if flag.overridable and not flag.killed
            else {}
        )
        #: (prerequisite key, variant required, the Decision served when it is not met, and
        #: that Decision per variant the prerequisite may serve instead: filled in by
        #: Snapshot.build, which knows the other flags); a flag with prerequisites is never
        #: constant (they depend on the subject)
        self.requires: tuple[_Requirement, ...] = ()
        if flag.requires and not flag.killed:
            off = flag.off_variant
            self.requires = tuple(
                (
                    r.flag,
                    r.variant,
                    Decision(flag.key, off, values[off], Reason.PREREQUISITE_FAILED),
                    {},
                )
                for r in flag.requires
            )
            self.constant = None


def _compile_rule(
    flag: Flag, rule: Rule, index: int, segments: Mapping[str, Predicate], values: Mapping[str, Any]
) -> _CompiledRule:
    preds = [segments[name] for name in rule.segments]
    preds += [compile_condition(c, f"flag {flag.key!r}") for c in rule.conditions]
    when = _all_of(preds) if preds else None
    if rule.split is not None:
        return when, None, _Split(flag, rule.split, index, values)
    assert rule.serve is not None
    return when, Decision(flag.key, rule.serve, values[rule.serve], Reason.RULE_MATCH, index), None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable, compiled set of flags and segments.

    Build one with :func:`rampup.load`. ``evaluate`` is a pure function of (snapshot, subject,
    clock) and never raises: an unknown key gives UNKNOWN_FLAG, an internal failure ERROR.
    """

    flags: Mapping[str, Flag]
    segments: Mapping[str, Segment]
    #: where it came from (a path, or ``<mapping>``), for logs and ``rampup check``
    origin: str = "<mapping>"
    #: when it was loaded (time.time()), for "last reload" diagnostics
    loaded_at: float = field(default_factory=time.time)
    #: why this snapshot serves no flags at all (an invalid flag file at start-up, rampup
    #: failing): every read is then ERROR with this reason, not a "typo?" UNKNOWN_FLAG
    unavailable: str | None = None
    # A plain dict, never changed after build(): every flag read looks it up, and a read-only
    # proxy's get costs a third more than a dict's.
    _compiled: Mapping[str, _CompiledFlag] = field(default_factory=dict, repr=False, compare=False)
    #: the environment whose overlays were applied ("" for the base flags)
    environment: str = ""
    #: the keys of the flags marked ``client = true``: what :meth:`Flags.client` may send
    client_keys: tuple[str, ...] = ()
    # The loader's fingerprint of each flag's raw definition (see config.py), so that the next
    # load of the same source skips validating the flags whose text did not change.
    _fingerprints: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        flags: Mapping[str, Flag],
        segments: Mapping[str, Segment],
        origin: str = "<mapping>",
        previous: Snapshot | None = None,
        *,
        fingerprints: Mapping[str, str] | None = None,
        environment: str = "",
    ) -> Snapshot:
        """Compile validated model objects (use :func:`rampup.load` for raw data).

        With ``previous`` (the snapshot this one replaces), a flag whose definition is the same
        and whose segments are all the same keeps ``previous``'s compiled form, Decisions
        included: a reload costs what changed, not the whole document. A changed segment
        recompiles every flag that uses it. A flag with prerequisites is always compiled
        again: its compiled form holds answers decided from the flags it requires.
        ``fingerprints`` is for the loader.
        """
        seg_preds = {name: compile_segment(seg) for name, seg in segments.items()}
        if previous is None:
            compiled = {key: _CompiledFlag(flag, seg_preds) for key, flag in flags.items()}
        else:
            compiled = _recompile(flags, segments, seg_preds, previous)
        for c in compiled.values():
            for key, want, failed, prebuilt in c.requires:
                # Every answer a prerequisite can give, decided now: an unmet requirement
                # then costs a dict lookup, not a Decision and its message per read.
                for got in [v.name for v in flags[key].variants] if key in flags else []:
                    if got != want:
                        prebuilt[got] = dataclasses.replace(
                            failed, detail=f"prerequisite {key!r} served {got!r}, not {want!r}"
                        )
        return cls(
            MappingProxyType(dict(flags)),
            MappingProxyType(dict(segments)),
            origin,
            _compiled=compiled,
            environment=environment,
            client_keys=tuple(key for key, flag in flags.items() if flag.client),
            _fingerprints=fingerprints if fingerprints is not None else {},
        )

    @classmethod
    def serving_nothing(cls, why: str, origin: str) -> Snapshot:
        """A snapshot with no flags because none can be served (``why``, e.g. "the flag file
        is invalid"): every read gives the caller's default with reason ERROR."""
        return cls(MappingProxyType({}), MappingProxyType({}), origin, unavailable=why)

    def reused(self, key: str, previous: Snapshot) -> bool:
        """True if flag ``key`` was not recompiled: this snapshot serves ``previous``'s
        compiled flag (the same Decision objects), as :meth:`build` does for an unchanged
        flag. For tests and benchmarks of incremental reloads."""
        mine = self._compiled.get(key)
        return mine is not None and mine is previous._compiled.get(key)

    def evaluate(
        self,
        key: str,
        subject: Subject | Callable[[], Subject],
        now: float | None = None,
        override: str | None = None,
    ) -> Decision:
        """Decide flag ``key`` for ``subject``.

        ``subject`` may also be a zero-argument callable returning the Subject: it is called
        only when a rule needs the subject, never for a killed flag, a flag without rules, a
        flag serving everyone one variant, or an honoured override (a request that reads only
        those resolves no subject). ``now`` (epoch seconds) defaults to the clock and only
        matters for ramps. ``override`` forces a variant when the flag allows overrides and is
        not killed: the kill switch wins over an override, and an override wins over the rules.
        """
        flag = self._compiled.get(key)
        if flag is None:
            if self.unavailable is not None:
                return unavailable_flag(key, self.unavailable)
            return unknown_flag(key)
        if override is not None:
            forced = flag.overrides.get(override)
            if forced is not None:
                return forced
        if flag.constant is not None:
            return flag.constant
        try:
            s = subject if isinstance(subject, Subject) else subject()
            if flag.requires:  # one falsy test for flags without prerequisites
                unmet = self._unmet(flag.requires, s, now)
                if unmet is not None:
                    return unmet
            # The rule walk: the first rule that applies and serves something decides.
            for when, fixed, split in flag.rules:
                if when is None or when(s):
                    if fixed is not None:
                        return fixed
                    d = split.choose(s, now)  # type: ignore[union-attr]
                    if d is not None:
                        return d
            return flag.default
        except ConditionFailed as exc:  # logged where it happened, once a minute
            return self.error_decision(key, exc.__cause__ or exc)
        except Exception as exc:  # a bug must not break the request: serve the default
            log.exception("rampup: evaluating flag %r failed; serving its default", key)
            return self.error_decision(key, exc)

    def constant(self, key: str) -> Decision | None:
        """The one Decision every subject gets for ``key`` (killed, no rules, or a first rule
        serving everyone, and no prerequisites), or None when subjects can be decided
        differently (or ``key`` is unknown). Such a flag needs no subject, and per-variant
        outcomes skip it."""
        flag = self._compiled.get(key)
        return None if flag is None else flag.constant

    def _unmet(
        self, requires: tuple[_Requirement, ...], s: Subject, now: float | None
    ) -> Decision | None:
        """The PREREQUISITE_FAILED Decision for the first requirement ``s`` does not meet, or
        None when every one is met. Cycles are refused at load, so this recursion ends."""
        for key, variant, failed, prebuilt in requires:
            got = self.evaluate(key, s, now).variant
            if got != variant:
                d = prebuilt.get(got)
                if d is not None:
                    return d
                return dataclasses.replace(
                    failed, detail=f"prerequisite {key!r} served {got!r}, not {variant!r}"
                )
        return None

    def prerequisite_chain(
        self, key: str, subject: Subject, now: float | None = None, depth: int = 0
    ) -> list[tuple[int, str, str, Decision]]:
        """(depth, prerequisite key, variant required, its Decision) for every prerequisite of
        ``key``, depth first, as :meth:`evaluate` checks them (``rampup explain`` prints it).
        Lists every requirement, including those after the first unmet one."""
        flag = self.flags.get(key)
        out: list[tuple[int, str, str, Decision]] = []
        if flag is None or flag.killed:
            return out
        for r in flag.requires:
            out.append((depth, r.flag, r.variant, self.evaluate(r.flag, subject, now)))
            out += self.prerequisite_chain(r.flag, subject, now, depth + 1)
        return out

    def override_refusal(self, key: str, variant: str) -> str | None:
        """Why an override ``key=variant`` would not be honoured, or None if it would."""
        flag = self.flags.get(key)
        if flag is None:
            return "unknown flag"
        if flag.killed:
            return "flag is killed (the kill switch wins over overrides)"
        if not flag.overridable:
            return "flag is not overridable"
        if all(v.name != variant for v in flag.variants):
            names = ", ".join(v.name for v in flag.variants)
            return f"unknown variant (expected one of: {names})"
        return None

    def error_decision(self, key: str, exc: BaseException) -> Decision:
        """The default variant with reason ERROR, for when deciding ``key`` failed."""
        flag = self.flags.get(key)
        if flag is None:
            return Decision(key, None, None, Reason.ERROR, detail=repr(exc)[:200])
        value = next(v.value for v in flag.variants if v.name == flag.default)
        return Decision(key, flag.default, value, Reason.ERROR, detail=repr(exc)[:200])

    def __len__(self) -> int:
        return len(self.flags)


def _recompile(
    flags: Mapping[str, Flag],
    segments: Mapping[str, Segment],
    seg_preds: Mapping[str, Predicate],
    previous: Snapshot,
) -> dict[str, _CompiledFlag]:
    """Compile ``flags``, reusing ``previous``'s compiled flag where nothing it depends on
    changed (its definition, and every segment its rules reference). A flag with prerequisites
    is never reused: its compiled form holds answers decided from the flags it requires (their
    variants), which may have changed while its own definition did not."""
    old_segments = previous.segments
    # a removed segment counts as changed: a flag still using it fails to compile, as before
    changed = {
        name for name in {*segments, *old_segments} if old_segments.get(name) != segments.get(name)
    }
    old_flags, old_compiled = previous.flags, previous._compiled
    out: dict[str, _CompiledFlag] = {}
    for key, flag in flags.items():
        old = old_flags.get(key)
        kept = old_compiled.get(key)
        if (
            kept is not None
            and old is not None
            and not flag.requires
            and (old is flag or _same_flag(old, flag))
            and not (changed and any(name in changed for r in flag.rules for name in r.segments))
        ):
            out[key] = kept
        else:
            out[key] = _CompiledFlag(flag, seg_preds)
    return out


def _same_flag(old: Flag, new: Flag) -> bool:
    """Equal, and serving the same values: dataclass equality holds for 1, 1.0 and True alike,
    but a variant serving True must not keep a compiled Decision serving 1."""
    return old == new and repr(old.variants) == repr(new.variants)


_unknown_logged: set[str] = set()
_UNKNOWN_LOG_CAP = 1000


_unavailable_logged: set[str] = set()


def unavailable_flag(key: str, why: str) -> Decision:
    """ERROR decision for ``key`` from a snapshot that serves nothing (``why``); logs the
    reason once per reason (bounded), not once per flag or request."""
    if why not in _unavailable_logged and len(_unavailable_logged) < _UNKNOWN_LOG_CAP:
        _unavailable_logged.add(why)
        log.error("rampup: no flags are served (%s); every flag reads as off", why)
    return Decision(key, None, None, Reason.ERROR, detail=why)


def unknown_flag(key: str) -> Decision:
    """UNKNOWN_FLAG decision; logs a warning the first time each key is seen (bounded)."""
    if key not in _unknown_logged and len(_unknown_logged) < _UNKNOWN_LOG_CAP:
        _unknown_logged.add(key)
        log.warning(
            "rampup: flag %r is not defined in the flag file; serving None/False "
            "(a typo? `rampup refs` lists keys read but not defined)",
            str(key)[:100],
        )
    return Decision(key, None, None, Reason.UNKNOWN_FLAG)
