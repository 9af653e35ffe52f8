"""The concepts of rampup as frozen, slotted dataclasses.

These are plain data: the loader (``config.py``) builds them from a flag file and the engine
(``engine.py``) compiles them into a :class:`~rampup.engine.Snapshot`. Nothing here imports a
web framework or OpenTelemetry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "BUCKETS",
    "Condition",
    "Decision",
    "Flag",
    "RampStep",
    "Reason",
    "Requirement",
    "Rollout",
    "Rule",
    "Segment",
    "Split",
    "Subject",
    "Variant",
]

#: Buckets per split: weights are expressed in hundredths of a percent (0.01 % steps).
BUCKETS = 10_000

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Reason(str, enum.Enum):
    """Why a :class:`Decision` served the variant it did."""

    DEFAULT = "DEFAULT"  #: no rule matched; the flag's default variant
    RULE_MATCH = "RULE_MATCH"  #: a rule matched and served one variant
    SPLIT = "SPLIT"  #: a rule matched and a sticky percentage split chose the variant
    KILLED = "KILLED"  #: the kill switch is on: the off (or default) variant for everyone
    OVERRIDE = "OVERRIDE"  #: a QA override forced the variant
    UNKNOWN_FLAG = "UNKNOWN_FLAG"  #: no flag has this key in the snapshot
    ERROR = "ERROR"  #: evaluation failed; the default variant is served and the error logged
    #: a prerequisite flag did not serve the variant required: the off (or default) variant
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Variant:
    """A variant's name and the value it serves (``on``/``off`` serve True/False)."""

    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class Condition:
    """``attribute <op> value``; ``key`` names the subject key itself."""

    attribute: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A named set of subjects: listed ``keys``, or subjects matching every condition."""

    name: str
    description: str = ""
    keys: frozenset[str] = frozenset()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class RampStep:
    """From ``start`` on, the split serves ``weights`` (variant, basis points out of 10,000)."""

    start: datetime
    weights: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Split:
    """Weighted variants, sticky per subject (or per the ``bucket_by`` attribute).

    Either fixed ``weights`` or a ``ramp`` schedule; before a ramp's first step the rule does not
    match. Weights are basis points (1 = 0.01 %) and sum to :data:`BUCKETS`.
    """

    weights: tuple[tuple[str, int], ...] = ()
    ramp: tuple[RampStep, ...] = ()
    bucket_by: str = "key"


@dataclass(frozen=True, slots=True)
class Rollout:
    """Guarded stages: ``treatment`` gets ``stages[stage]`` percent, ``control`` the rest.

    The guard (``rampup.guard``) advances ``stage`` on evidence and kills the flag on a
    regression; the rule's :class:`Split` always holds the current stage's weights, so
    evaluation never looks at this. ``not_before[i]`` (when given) is the earliest time stage
    ``i`` may start; ``hold`` is the minimum seconds in a stage before advancing; ``held``
    (set and cleared by an operator) pauses advancing, never halting.
    """

    stages: tuple[float, ...]
    stage: int = 0
    treatment: str = "on"
    control: str = "off"
    hold: float = 1800.0
    not_before: tuple[datetime, ...] = ()
    errors: bool = True
    #: "" (off), "mean" (mean log-latency), "p99" (requests slower than the control's p99)
    #: or "both"
    latency: str = ""
    alpha: float = 0.01
    #: treatment requests a stage must see before it may advance
    min_requests: int = 1000
    #: set by an operator: the guard still halts on harm but does not advance
    held: bool = False

    @property
    def share(self) -> float:
        """The treatment's percentage at the current stage."""
        return self.stages[self.stage]


@dataclass(frozen=True, slots=True)
class Rule:
    """Conditions and segment references (all must hold) -> one variant or a split.

    A guarded ``rollout`` rule also has ``split``: the weights of its current stage.
    """

    segments: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    serve: str | None = None
    split: Split | None = None
    description: str = ""
    rollout: Rollout | None = None


@dataclass(frozen=True, slots=True)
class Requirement:
    """A prerequisite: flag ``flag`` must serve ``variant`` to the subject."""

    flag: str
    variant: str


@dataclass(frozen=True, slots=True)
class Flag:
    """A feature flag as written in the flag file."""

    key: str
    variants: tuple[Variant, ...]
    default: str
    rules: tuple[Rule, ...] = ()
    killed: bool = False
    overridable: bool = True
    description: str = ""
    salt: str = ""
    #: scalar facts about the flag (owner, ticket, ...), passed on as OpenFeature flag metadata
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    #: prerequisites, checked in order before the rules (see :class:`Requirement`)
    requires: tuple[Requirement, ...] = ()
    #: who to ask about this flag (a team or a person), for ``rampup refs``
    owner: str = ""
    #: the day a temporary flag should be gone; ``rampup check`` warns once it has passed
    expires: date | None = None
    #: ``temporary`` (a release flag, to delete once rolled out) or ``permanent``
    kind: str = "temporary"
    #: its value may be sent to browser code (``Flags.client()``)
    client: bool = False

    @property
    def off_variant(self) -> str:
        """What the kill switch serves: ``off`` when the flag has it, else the default."""
        return "off" if any(v.name == "off" for v in self.variants) else self.default

    @property
    def is_boolean(self) -> bool:
        """True for a flag whose variants are exactly ``on``/``off`` serving True/False."""
        # Compare by identity: variant values may be unhashable (lists), and 1/0 are not booleans.
        values = {v.name: v.value for v in self.variants}
        return len(values) == 2 and values.get("on") is True and values.get("off") is False


@dataclass(frozen=True, slots=True, init=False)
class Subject:
    """Who a request is for: a key (user id or anonymous id) and attributes.

    ``key`` may be None (no identity at all); such a subject never enters a split.
    """

    key: str | None
    attributes: Mapping[str, Any]

    def __init__(self, key: str | None, attributes: Mapping[str, Any] = _EMPTY) -> None:
        # Built once per request: set the slots directly instead of the frozen dataclass's
        # object.__setattr__ calls, which cost about a third more. Still immutable afterwards.
        _set_key(self, key)
        _set_attributes(self, attributes)

    def get(self, name: str) -> Any:
        """The attribute ``name`` (``key`` is the subject key), or None."""
        if name == "key":
            return self.key
        return self.attributes.get(name)


_set_key = Subject.__dict__["key"].__set__
_set_attributes = Subject.__dict__["attributes"].__set__


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating one flag for one subject."""

    key: str
    variant: str | None
    value: Any
    reason: Reason
    rule_index: int | None = None
    #: a human-readable note: why a split was skipped, what error happened, ...
    detail: str = ""

    @property
    def enabled(self) -> bool:
        """True when the served value is truthy (``on`` for boolean flags)."""
        return bool(self.value)
