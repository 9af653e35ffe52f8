"""Compile flags into an immutable :class:`Snapshot` and evaluate them.

Every rule, condition and split is compiled once into a closure, and every Decision a flag can
return for a fixed outcome is built ahead of time, so evaluation is a dict lookup plus the
predicates of the rules it walks: no parsing, no I/O, no locks, and a cost that does not depend
on how many flags the snapshot holds.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .bucketing import bucketer, prefix_hash, two_way
from .model import BUCKETS, Decision, Flag, Reason, Rule, Segment, Split, Subject
from .operators import Predicate, compile_condition

__all__ = ["Evaluator", "Snapshot", "compile_flag"]

log = logging.getLogger("rampup")

_from_bytes = int.from_bytes

#: (subject, now or None) -> Decision
Evaluator = Callable[[Subject, "float | None"], Decision]


def _always(_: Subject) -> bool:
    return True


def _all_of(preds: list[Predicate]) -> Predicate:
    if not preds:
        return _always
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda s: a(s) and b(s)
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


def _chooser(
    salt: str, bounds: tuple[int, ...], decisions: tuple[Decision, ...]
) -> Callable[[str], Decision]:
    """key -> the Decision whose bucket range holds the key's bucket."""
    if len(decisions) == 1:  # 100 % one variant: no need to hash
        only = decisions[0]
        return lambda k: only
    if len(decisions) == 2:  # the common on/off split, hash inlined
        return two_way(salt, bounds[0], decisions[0], decisions[1])
    bucket_of = bucketer(salt)

    def choose(k: str) -> Decision:
        b = bucket_of(k)
        for bound, decision in zip(bounds, decisions, strict=True):
            if b < bound:
                return decision
        return decisions[-1]  # pragma: no cover - weights sum to 10000

    return choose


def _two_way_by_key(
    salt: str, bound: int, decisions: tuple[Decision, ...], no_key: Decision
) -> Evaluator:
    """An on/off split by subject key as one function: :func:`~rampup.bucketing.two_way` with
    the key lookup fused in (tests hold it to :func:`~rampup.bucketing.bucket`)."""
    below, rest = decisions
    copy = prefix_hash(salt).copy

    def split_by_key(s: Subject, now: float | None) -> Decision:
        k = s.key
        if not k:
            return no_key
        h = copy()
        try:
            h.update(k.encode())  # the default codec's fast path
        except UnicodeEncodeError:  # lone surrogates: hashed as bucket() hashes them
            h.update(k.encode("utf-8", "surrogatepass"))
        return below if _from_bytes(h.digest(), "big") % BUCKETS < bound else rest

    return split_by_key


def _compile_split(flag: Flag, split: Split, index: int, values: Mapping[str, Any]) -> Evaluator:
    salt = flag.salt or flag.key
    by = split.bucket_by
    no_key = Decision(
        flag.key,
        flag.default,
        values[flag.default],
        Reason.DEFAULT,
        index,
        detail=f"rule {index} splits by {by!r}, which this subject lacks: default served",
    )

    def key_of(s: Subject) -> str | None:
        k = s.key if by == "key" else s.attributes.get(by)
        if k is None or k == "":
            return None
        return k if isinstance(k, str) else str(k)

    if not split.ramp:
        bounds, decisions = _split_table(flag, split.weights, index, values)
        if by == "key" and len(decisions) == 2:  # the hottest case: the hash inlined too
            return _two_way_by_key(salt, bounds[0], decisions, no_key)
        choose = _chooser(salt, bounds, decisions)
        if by == "key":  # the hot case, fused: no helper calls besides the hash

            def by_subject_key(s: Subject, now: float | None) -> Decision:
                k = s.key
                return choose(k) if k else no_key

            return by_subject_key

        def by_attribute(s: Subject, now: float | None) -> Decision:
            k = key_of(s)
            return no_key if k is None else choose(k)

        return by_attribute

    starts = [step.start.timestamp() for step in split.ramp]
    steps = [
        _chooser(salt, *_split_table(flag, step.weights, index, values)) for step in split.ramp
    ]

    def ramp(s: Subject, now: float | None) -> Decision:
        i = bisect_right(starts, time.time() if now is None else now) - 1
        if i < 0:
            return _NO_MATCH
        k = key_of(s)
        return no_key if k is None else steps[i](k)

    return ramp


# Returned by a rule that does not apply, so the flag goes on to its next rule.
_NO_MATCH = Decision("", None, None, Reason.DEFAULT)
_NOBODY = Subject(None)


def _compile_rule(
    flag: Flag, rule: Rule, index: int, segments: Mapping[str, Predicate], values: Mapping[str, Any]
) -> tuple[Predicate | None, Evaluator, Decision | None]:
    """(condition or None for "everyone", what the rule serves, the Decision if fixed)."""
    preds = [segments[name] for name in rule.segments]
    preds += [compile_condition(c, f"flag {flag.key!r}") for c in rule.conditions]
    when = _all_of(preds) if preds else None
    if rule.split is not None:
        return when, _compile_split(flag, rule.split, index, values), None
    assert rule.serve is not None
    fixed = Decision(flag.key, rule.serve, values[rule.serve], Reason.RULE_MATCH, index)
    return when, lambda s, now: fixed, fixed


def compile_flag(flag: Flag, segments: Mapping[str, Predicate]) -> Evaluator:
    """The evaluator of one validated flag; ``segments`` maps names to compiled predicates."""
    return _compile(flag, segments)[0]


def _compile(flag: Flag, segments: Mapping[str, Predicate]) -> tuple[Evaluator, Decision | None]:
    """(evaluator, the Decision it always returns when no subject can change it, else None)."""
    values = {v.name: v.value for v in flag.variants}
    default = Decision(flag.key, flag.default, values[flag.default], Reason.DEFAULT)
    if flag.killed:
        off = flag.off_variant
        killed = Decision(flag.key, off, values[off], Reason.KILLED)
        return (lambda s, now: killed), killed
    rules = [_compile_rule(flag, r, i, segments, values) for i, r in enumerate(flag.rules)]
    if not rules:
        return (lambda s, now: default), default
    if len(rules) == 1:
        ((when, serve, fixed),) = rules
        if when is None:
            if fixed is not None:  # "everyone gets X": no subject needed
                return serve, fixed
            if _always_serves(flag.rules[0]):
                return serve, None  # a plain split: no wrapper needed

            def everyone(s: Subject, now: float | None) -> Decision:
                d = serve(s, now)
                return default if d is _NO_MATCH else d

            return everyone, None

        def one_rule(s: Subject, now: float | None) -> Decision:
            if when(s):
                d = serve(s, now)
                if d is not _NO_MATCH:
                    return d
            return default

        return one_rule, None
    # A last rule for everyone that always serves (the usual "else split") ends the walk
    # without a loop step; fixed decisions are returned without calling anything.
    last_when, last_serve, _ = rules[-1]
    tail = last_serve if last_when is None and _always_serves(flag.rules[-1]) else None
    head = tuple(
        (when or _always, serve, fixed)
        for when, serve, fixed in (rules[:-1] if tail is not None else rules)
    )
    if tail is not None and len(head) == 1:
        # "a segment gets X, everyone else a split": the usual progressive-delivery flag,
        # without the loop
        ((if_, then, then_fixed),) = head
        otherwise = tail

        def first_else(s: Subject, now: float | None) -> Decision:
            if if_(s):
                if then_fixed is not None:
                    return then_fixed
                d = then(s, now)
                if d is not _NO_MATCH:
                    return d
            return otherwise(s, now)

        return first_else, None

    def walk(s: Subject, now: float | None) -> Decision:
        for when, serve, fixed in head:
            if when(s):
                if fixed is not None:
                    return fixed
                d = serve(s, now)
                if d is not _NO_MATCH:
                    return d
        return default if tail is None else tail(s, now)

    return walk, None


def _always_serves(rule: Rule) -> bool:
    """True when the rule, once it applies, always serves something (only a ramp before its
    first step does not)."""
    return rule.split is None or not rule.split.ramp


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
    _evaluators: Mapping[str, Evaluator] = field(default_factory=dict, repr=False, compare=False)
    _overrides: Mapping[tuple[str, str], Decision] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: the flags whose Decision no subject can change (killed, no rules, "serve" to all):
    #: a request reads them without resolving its subject. Overrides still come first.
    _constants: Mapping[str, Decision] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls, flags: Mapping[str, Flag], segments: Mapping[str, Segment], origin: str = "<mapping>"
    ) -> Snapshot:
        """Compile validated model objects (use :func:`rampup.load` for raw data)."""
        seg_preds = {name: compile_segment(seg) for name, seg in segments.items()}
        evaluators: dict[str, Evaluator] = {}
        constants: dict[str, Decision] = {}
        for key, flag in flags.items():
            evaluators[key], constant = _compile(flag, seg_preds)
            if constant is not None:
                constants[key] = constant
        overrides = {
            (key, v.name): Decision(key, v.name, v.value, Reason.OVERRIDE)
            for key, flag in flags.items()
            if flag.overridable and not flag.killed
            for v in flag.variants
        }
        # The private tables stay plain dicts, never changed after this: every flag read looks
        # them up, and a read-only proxy's get costs a third more than a dict's.
        return cls(
            MappingProxyType(dict(flags)),
            MappingProxyType(dict(segments)),
            origin,
            _evaluators=evaluators,
            _constants=constants,
            _overrides=overrides,
        )

    def evaluate(
        self,
        key: str,
        subject: Subject,
        now: float | None = None,
        override: str | None = None,
    ) -> Decision:
        """Decide flag ``key`` for ``subject``.

        ``now`` (epoch seconds) defaults to the clock and only matters for ramps. ``override``
        forces a variant when the flag allows overrides and is not killed: the kill switch wins
        over an override, and an override wins over the rules.
        """
        ev = self._evaluators.get(key)
        if ev is None:
            return unknown_flag(key)
        if override is not None:
            forced = self._overrides.get((key, override))
            if forced is not None:
                return forced
        try:
            return ev(subject, now)
        except Exception as exc:  # a bug must not break the request: serve the default
            log.exception("rampup: evaluating flag %r failed; serving its default", key)
            return self.error_decision(key, exc)

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


_unknown_logged: set[str] = set()
_UNKNOWN_LOG_CAP = 1000


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
