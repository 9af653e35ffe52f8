"""The guard's data and the protocols it reads and acts through (see :mod:`rampup.guard`).

Plain data only: per-variant sums (:class:`VariantCounts`), a stage's memory
(:class:`StageState`, what a store persists), one look's evidence and verdict (:class:`Status`),
and the two small protocols a book or a store implements (:class:`OutcomeReader`,
:class:`Actions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .guard_stats import HALT_RATIOS

__all__ = ["Actions", "OutcomeReader", "StageState", "StaticReader", "Status", "VariantCounts"]


@dataclass(slots=True)
class VariantCounts:
    """One variant's plain sums: requests, errors, deduplicated error subjects, and the
    latency sums ``n``, ``sum ln(seconds)``, ``sum ln(seconds)^2``. Cumulative or a difference
    of two reads (:meth:`minus`)."""

    requests: int = 0
    errors: int = 0
    error_subjects: int = 0
    lat_n: int = 0
    lat_sum: float = 0.0
    lat_sumsq: float = 0.0

    def minus(self, other: VariantCounts) -> VariantCounts:
        """These sums less ``other``'s (the counts since ``other`` was read)."""
        return VariantCounts(
            self.requests - other.requests,
            self.errors - other.errors,
            self.error_subjects - other.error_subjects,
            self.lat_n - other.lat_n,
            self.lat_sum - other.lat_sum,
            self.lat_sumsq - other.lat_sumsq,
        )

    def to_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantCounts:
        """From :meth:`to_dict` (or a JSON file of sums); unknown keys are ignored.

        Raises ValueError for a value that is not a number (counts must be whole numbers)."""
        out = cls()
        for f in dataclasses.fields(cls):
            if f.name in data:
                v = data[f.name]
                kind = int if f.type in ("int", int) else float
                if isinstance(v, bool) or not isinstance(v, int | float) or kind(v) != v:
                    raise ValueError(
                        f"{f.name} must be a {'whole ' * (kind is int)}number, got {v!r}"
                    )
                setattr(out, f.name, kind(v))
        return out


class OutcomeReader(Protocol):
    """**Protocol:** what the guard reads: cumulative per-variant sums of one flag.

    The outcome book (one process) and the store's fleet sums (many) both fit. Reads must be
    monotonic: the guard subtracts the read taken at a stage's start.
    """

    def counts(self, flag: str) -> Mapping[str, VariantCounts]:
        """Each variant's cumulative sums (variants never served may be missing)."""
        ...

    def quantile(self, flag: str, variant: str, q: float) -> float | None:
        """The ``q`` quantile of the variant's latency in seconds so far, None if unknown."""
        ...

    def slower_than(self, flag: str, variant: str, seconds: float) -> int:
        """How many of the variant's requests so far took longer than ``seconds``."""
        ...


class StaticReader:
    """Fixed sums, e.g. from a JSON file ``{flag: {variant: {requests, error_subjects, ...}}}``
    (what ``rampup guard status --counts`` reads). No latency histogram: the tail test waits."""

    def __init__(self, sums: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        self.sums = {
            flag: {v: VariantCounts.from_dict(c) for v, c in variants.items()}
            for flag, variants in sums.items()
        }

    def counts(self, flag: str) -> Mapping[str, VariantCounts]:
        """The sums given for ``flag``."""
        return self.sums.get(flag, {})

    def quantile(self, flag: str, variant: str, q: float) -> float | None:
        """Unknown: plain sums hold no histogram."""
        return None

    def slower_than(self, flag: str, variant: str, seconds: float) -> int:
        """Unknown: always 0."""
        return 0


class Actions(Protocol):
    """**Protocol:** how the guard acts: the store's kill and stage write, or in-process."""

    def kill(self, flag: str, reason: str) -> None:
        """Kill ``flag`` (serve its off variant to everyone), recording ``reason``."""
        ...

    def set_stage(self, flag: str, index: int, state: StageState) -> None:
        """Move ``flag``'s rollout to stage ``index``; ``state`` is the guard's new state."""
        ...


@dataclass(slots=True)
class StageState:
    """The guard's memory of one flag's current stage: plain data, persisted by a store.

    ``carried`` holds each halt ratio's log-likelihood from the earlier stages (so one alpha
    covers the whole rollout), ``carried_tail`` the same for the latency tail test and
    ``carried_mean`` the (capped) log of the mean-latency test's earlier stages.
    """

    flag: str
    index: int
    started_at: float
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    carried: list[float] = field(default_factory=lambda: [0.0] * len(HALT_RATIOS))
    carried_tail: list[float] = field(default_factory=lambda: [0.0] * len(HALT_RATIOS))
    carried_mean: float = 0.0
    #: latency: sums read when the first minute ended, the control's frozen p99, and the
    #: slow-request counts when it was frozen
    lat_baseline: dict[str, dict[str, float]] | None = None
    p99: float | None = None
    slow_baseline: dict[str, int] = field(default_factory=dict)
    #: each variant's timed requests when the p99 was frozen
    tail_timed: dict[str, int] = field(default_factory=dict)
    #: the last verdict: "hold", "advance", "halt", "done", "killed"
    verdict: str = "hold"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageState:
        """From :meth:`to_dict`."""
        return cls(**dict(data))


@dataclass(frozen=True, slots=True)
class Status:
    """One flag's evidence and verdict at one look (what ``rampup guard status`` prints)."""

    flag: str
    stage: int
    stages: tuple[float, ...]
    share: float
    treatment: str
    control: str
    seconds_in_stage: float
    #: each variant's sums since the stage started
    counts: Mapping[str, VariantCounts]
    #: the halt e-process (carried across stages), its threshold 1/alpha, the advance e-value
    e: float
    halt_at: float
    e_adv: float
    srm_p: float
    #: the latency e-values (1.0 when not configured or still warming up); the mean test
    #: halts only when ``latency_diff`` (difference of mean log-seconds) is positive
    e_latency_mean: float
    e_latency_tail: float
    latency_diff: float
    #: requests slower than the control's frozen p99, and requests timed, (treatment, control)
    slow: tuple[int, int]
    timed: tuple[int, int]
    #: "halt", "advance", "hold", "done" (last stage reached) or "killed"
    verdict: str
    #: why: the halt reason, or the advance evidence
    reason: str
    #: what a hold waits for, in words
    waiting_for: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["counts"] = {v: c.to_dict() for v, c in self.counts.items()}
        data["stages"] = list(self.stages)
        data["waiting_for"] = list(self.waiting_for)
        return data
