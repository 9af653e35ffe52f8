"""The outcome book: each (flag, variant)'s requests, errors and latency, in this process.

For every request, the book adds one to each variant it was served of a flag whose decision can
differ between subjects (a split, a ramp, a rule); a flag that serves one constant to everyone
tells nothing about its variant and is left out, and so is a variant a QA override forced.
Per (flag, variant) it keeps plain sums, so books of several processes merge by adding:

* ``requests``; ``errors`` (a 5xx response or an exception); ``error_subjects`` (a subject's
  first error within :data:`ERROR_SUBJECT_WINDOW` seconds counts once, so one user retrying
  does not look like many);
* latency: ``log_sum`` (sum of ln(seconds)), ``log_sq_sum`` (sum of its squares) and an
  exponential histogram of base 2^(1/8) (OpenTelemetry's exponential histogram at scale 3)
  spanning :data:`MIN_SECONDS` to :data:`MAX_SECONDS` in :data:`BUCKETS` buckets, so a quantile
  read from it is within 4.4 % of the exact one.

Read it with :meth:`OutcomeBook.read` / :meth:`OutcomeBook.snapshot` (totals since the process
started) or :meth:`OutcomeBook.take` (what happened since the previous ``take``: a stage
boundary). Memory is bounded: at most :data:`MAX_FLAGS` flags, :data:`MAX_VARIANTS` variants
each, and :data:`MAX_ERROR_SUBJECTS` remembered error subjects. The request path takes no lock:
under the GIL each ``+=`` on a number completes without a switch, so counts stay exact.

This is a core module: it imports no framework and no OpenTelemetry. :class:`OutcomeRecorder`
is the request listener that feeds a book; every adapter installs one for :data:`book`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .model import Decision, Reason

__all__ = [
    "BUCKETS",
    "ERROR_SUBJECT_WINDOW",
    "MAX_ERROR_SUBJECTS",
    "MAX_FLAGS",
    "MAX_SECONDS",
    "MAX_VARIANTS",
    "MIN_SECONDS",
    "OutcomeBook",
    "OutcomeRecorder",
    "OutcomeSnapshot",
    "VariantStats",
    "book",
    "bucket_bounds",
    "report",
]

log = logging.getLogger("rampup")

#: flags the book tracks at most; a flag seen after that is not counted (``dropped`` says how
#: many flag reads were left out, and a warning is logged once)
MAX_FLAGS = 256
#: variants per flag tracked at most (flag files define few; reloads may rename them)
MAX_VARIANTS = 64
#: a subject's errors on one variant within this many seconds count once in ``error_subjects``
ERROR_SUBJECT_WINDOW = 60.0
#: (flag, variant, subject) error times remembered at most; past it the oldest is forgotten
#: (that subject's next error within the window then counts again)
MAX_ERROR_SUBJECTS = 10_000
#: latency histogram range (seconds); faster or slower requests go to the first/last bucket
MIN_SECONDS = 1e-4
MAX_SECONDS = 100.0
#: buckets per index step: base 2^(1/8), OpenTelemetry's exponential histogram scale 3
SCALE = 3
_PER_LN = (1 << SCALE) / math.log(2)  # bucket index per unit of ln(seconds)
_FIRST = math.floor(math.log2(MIN_SECONDS) * (1 << SCALE))  # OTel index of bucket 0 (-107)
_LAST = math.floor(math.log2(MAX_SECONDS) * (1 << SCALE))  # OTel index of the last (53)
#: number of histogram buckets (161)
BUCKETS = _LAST - _FIRST + 1
_LN_MIN = _FIRST / _PER_LN  # ln of bucket 0's lower bound
_TOP = BUCKETS - 1
_COUNTED = frozenset({Reason.SPLIT, Reason.RULE_MATCH, Reason.DEFAULT})
_CACHE_SIZE = 4096
_ZEROS = (0,) * BUCKETS


def bucket_bounds(i: int) -> tuple[float, float]:
    """The [lower, upper) bounds in seconds of histogram bucket ``i`` (0 .. BUCKETS-1)."""
    return 2.0 ** ((_FIRST + i) / (1 << SCALE)), 2.0 ** ((_FIRST + i + 1) / (1 << SCALE))


@dataclass(frozen=True, slots=True)
class VariantStats:
    """The sums of one (flag, variant): add two to merge processes, subtract to get a window."""

    requests: int = 0
    errors: int = 0
    error_subjects: int = 0
    #: sum of ln(seconds) over the requests (their latency's log-mean is log_sum / requests)
    log_sum: float = 0.0
    #: sum of ln(seconds) squared (for the log-latency's variance)
    log_sq_sum: float = 0.0
    #: request counts per latency bucket (:func:`bucket_bounds`); () when there are none
    buckets: tuple[int, ...] = ()

    @property
    def error_rate(self) -> float:
        """errors / requests (0.0 with no request)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p50(self) -> float | None:
        """Median latency in seconds (None with no request)."""
        return self.quantile(0.5)

    @property
    def p95(self) -> float | None:
        """95th percentile latency in seconds (None with no request)."""
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        """99th percentile latency in seconds (None with no request)."""
        return self.quantile(0.99)

    def quantile(self, q: float) -> float | None:
        """The latency (seconds) at quantile ``q`` (0 < q <= 1): the geometric middle of the
        bucket holding the request of rank ceil(q * n), within 4.4 % of it. None when empty."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"rampup: quantile q={q!r}; expected 0 < q <= 1")
        n = sum(self.buckets)
        if not n:
            return None
        rank = max(1, math.ceil(q * n - 1e-9))
        seen = 0
        for i, count in enumerate(self.buckets):
            seen += count
            if seen >= rank:
                return float(2.0 ** ((_FIRST + i + 0.5) / (1 << SCALE)))
        return None  # pragma: no cover - seen reaches n

    def __add__(self, other: VariantStats) -> VariantStats:
        return self._combine(other, 1)

    def __sub__(self, other: VariantStats) -> VariantStats:
        return self._combine(other, -1)

    def _combine(self, other: VariantStats, sign: int) -> VariantStats:
        if not isinstance(other, VariantStats):
            return NotImplemented
        a, b = self.buckets or _ZEROS, other.buckets or _ZEROS
        buckets = tuple(x + sign * y for x, y in zip(a, b, strict=True))
        return VariantStats(
            self.requests + sign * other.requests,
            self.errors + sign * other.errors,
            self.error_subjects + sign * other.error_subjects,
            self.log_sum + sign * other.log_sum,
            self.log_sq_sum + sign * other.log_sq_sum,
            buckets if any(buckets) else (),
        )


_NONE: Mapping[str, VariantStats] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutcomeSnapshot:
    """The book at one moment (or the difference of two): flag -> variant -> stats."""

    flags: Mapping[str, Mapping[str, VariantStats]] = field(default_factory=dict)
    #: time.time() when it was read
    at: float = 0.0

    def read(self, flag: str) -> Mapping[str, VariantStats]:
        """``{variant: VariantStats}`` of ``flag`` ({} when it was not served)."""
        return self.flags.get(flag, _NONE)

    def __iter__(self) -> Iterator[tuple[str, str, VariantStats]]:
        """(flag, variant, stats) for each variant, flags and variants in first-seen order."""
        for flag, variants in self.flags.items():
            for variant, stats in variants.items():
                yield flag, variant, stats

    def __add__(self, other: OutcomeSnapshot) -> OutcomeSnapshot:
        """Merge two books (e.g. of two processes)."""
        return self._combine(other, VariantStats.__add__, max(self.at, other.at))

    def since(self, earlier: OutcomeSnapshot) -> OutcomeSnapshot:
        """What happened between ``earlier`` and this snapshot of the same book."""
        return self._combine(earlier, VariantStats.__sub__, self.at)

    def _combine(
        self,
        other: OutcomeSnapshot,
        op: Callable[[VariantStats, VariantStats], VariantStats],
        at: float,
    ) -> OutcomeSnapshot:
        out: dict[str, dict[str, VariantStats]] = {}
        for flag in {**self.flags, **other.flags}:
            mine, theirs = self.read(flag), other.read(flag)
            out[flag] = {
                v: op(mine.get(v, VariantStats()), theirs.get(v, VariantStats()))
                for v in {**mine, **theirs}
            }
        return OutcomeSnapshot(out, at)


class _Sums:
    """Latency sums of a set of requests (request count = sum of the buckets)."""

    __slots__ = ("buckets", "log_sq_sum", "log_sum")

    def __init__(self) -> None:
        self.log_sum = 0.0
        self.log_sq_sum = 0.0
        self.buckets = [0] * BUCKETS

    def add_to(self, other: _Sums) -> None:
        other.log_sum += self.log_sum
        other.log_sq_sum += self.log_sq_sum
        ob = other.buckets
        for i, n in enumerate(self.buckets):
            if n:
                ob[i] += n


class _Tally(_Sums):
    """The live sums of one (flag, variant): errors here, latency here and in its combos."""

    __slots__ = ("error_subjects", "errors", "flag", "variant")

    def __init__(self, flag: str, variant: str) -> None:
        super().__init__()
        self.flag = flag
        self.variant = variant
        self.errors = 0
        self.error_subjects = 0


class _Combo(_Sums):
    """The latency sums of requests that were served the same decisions, in the same order.

    A request adds to its one combo (three additions) instead of to each variant it was
    served (three per variant); a read adds each combo to each of its variants. Views read
    the same few flags, so there are few combos (capped at MAX_COMBOS)."""

    __slots__ = ("tallies",)

    def __init__(self, tallies: tuple[_Tally, ...]) -> None:
        super().__init__()
        self.tallies = tallies


#: distinct combos kept at most; past it they are folded into their variants and dropped
MAX_COMBOS = 1024


class OutcomeBook:
    """Per-(flag, variant) outcome sums of one process; fed by :class:`OutcomeRecorder`.

    ``clock`` (monotonic seconds) is what the error-subject window is measured with.
    """

    __slots__ = (
        "_clock",
        "_combos",
        "_decided",
        "_held",
        "_mark",
        "_recent",
        "_tallies",
        "_warned",
        "dropped",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: flag -> variant -> tally
        self._tallies: dict[str, dict[str, _Tally]] = {}
        #: (id of each decision a request was served, in order) -> its combo
        self._combos: dict[tuple[int, ...], _Combo] = {}
        #: id(decision) -> its tally, or _SKIP when the decision is not counted. Decisions are
        #: prebuilt and shared by requests; _held keeps each alive so its id stays its own.
        self._decided: dict[int, Any] = {}
        self._held: list[Decision] = []
        #: (flag, variant, subject key) -> when its error was counted (oldest first)
        self._recent: dict[tuple[str, str, str], float] = {}
        self._mark = OutcomeSnapshot()
        self._warned = False
        #: flag reads left out because the book was full (MAX_FLAGS / MAX_VARIANTS)
        self.dropped = 0

    # -- reading ---------------------------------------------------------------------------
    def read(self, flag: str) -> Mapping[str, VariantStats]:
        """``{variant: VariantStats}`` of ``flag`` since the process started."""
        return self.snapshot().read(flag)

    def snapshot(self) -> OutcomeSnapshot:
        """Every flag's totals since the process started (never resets)."""
        latency: dict[int, _Sums] = {}
        for combo in list(self._combos.values()):
            for t in combo.tallies:
                sums = latency.get(id(t))
                if sums is None:
                    sums = latency[id(t)] = _Sums()
                    t.add_to(sums)
                combo.add_to(sums)
        out: dict[str, dict[str, VariantStats]] = {}
        for flag, variants in list(self._tallies.items()):
            stats = out[flag] = {}
            for variant, t in list(variants.items()):
                sums = latency.get(id(t), t)
                buckets = tuple(sums.buckets)
                requests = sum(buckets)
                stats[variant] = VariantStats(
                    requests,
                    t.errors,
                    t.error_subjects,
                    sums.log_sum,
                    sums.log_sq_sum,
                    buckets if requests else (),
                )
        return OutcomeSnapshot(out, time.time())

    def take(self) -> OutcomeSnapshot:
        """What happened since the previous ``take()`` (or the start), and start a new window:
        for stage boundaries. One window per book: two readers that each want their own
        window should keep a :meth:`snapshot` and use :meth:`OutcomeSnapshot.since`."""
        now = self.snapshot()
        window, self._mark = now.since(self._mark), now
        return window

    def flags(self) -> list[str]:
        """The flags tracked, in first-seen order."""
        return list(self._tallies)

    # -- writing (the request path) --------------------------------------------------------
    def _combo(self, flags: Any, key: tuple[int, ...]) -> _Combo:
        """The combo of a request served these decisions (made on first sight)."""
        if len(self._combos) >= MAX_COMBOS or len(self._decided) >= _CACHE_SIZE:
            self._fold()
        combos = self._combos
        tallies = tuple(
            t
            for t in map(self._learn, flags._decisions.values(), [flags] * len(key))
            if t is not _SKIP
        )
        combo = _Combo(tallies)
        # Found again by the decisions' ids only when each is held (an ERROR decision is not:
        # its id could be reused by another decision) and no flag was read meanwhile (another
        # thread); else by its tallies' ids (held for good), so its sums are never lost.
        decided = self._decided
        if len(key) == len(flags._decisions) and all(i in decided for i in key):
            combos[key] = combo
            return combo
        return combos.setdefault(tuple(map(id, tallies)), combo)

    def _fold(self) -> None:
        """Add every combo to its variants and forget combos and decisions (cache full)."""
        combos, self._combos = self._combos, {}
        for combo in combos.values():
            for t in combo.tallies:
                combo.add_to(t)
        self._decided = {}
        self._held = []

    def _learn(self, d: Decision, flags: Any) -> Any:
        """Whether ``d`` counts, and where: a variable flag's variant, served by its rules
        (its tally), or not (_SKIP)."""
        t = self._decided.get(id(d))
        if t is not None:
            return t
        if d.reason in (Reason.ERROR, Reason.UNKNOWN_FLAG) or d.variant is None:
            return _SKIP  # built per request (not worth caching), or no variant
        counted = (
            d.reason in _COUNTED
            # a constant flag's one decision (no rules, killed, "serve" to all)
            and flags.snapshot.constant(d.key) is not d
        )
        t = self.tally(d.key, d.variant) if counted else None
        self._decided[id(d)] = t = _SKIP if t is None else t
        self._held.append(d)
        return t

    def tally(self, flag: str, variant: str) -> _Tally | None:
        """The live sums of (flag, variant), created on first use; None when the book is full."""
        variants = self._tallies.get(flag)
        if variants is None:
            if len(self._tallies) >= MAX_FLAGS:
                self._full(flag)
                return None
            variants = self._tallies.setdefault(flag, {})
        t = variants.get(variant)
        if t is None:
            if len(variants) >= MAX_VARIANTS:
                self._full(flag)
                return None
            t = variants.setdefault(variant, _Tally(flag, variant))
        return t

    def _full(self, flag: str) -> None:
        self.dropped += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "rampup: the outcome book tracks at most %d flags of %d variants; %r and any "
                "flag after it are not counted",
                MAX_FLAGS,
                MAX_VARIANTS,
                flag[:100],
            )

    def _failed(self, flags: Any, tallies: tuple[_Tally, ...]) -> None:
        subject = flags.subject.key if tallies else None
        for t in tallies:
            t.errors += 1
            if self.first_error(t.flag, t.variant, subject):
                t.error_subjects += 1

    def first_error(self, flag: str, variant: str, subject: str | None) -> bool:
        """Is this the subject's first error on (flag, variant) within the window? Records it.
        A request without a subject key always counts (nothing tells two of them apart)."""
        if subject is None:
            return True
        now = self._clock()
        recent = self._recent
        # Oldest first: forget what left the window, and the oldest past the cap.
        while recent:
            old = next(iter(recent))
            if now - recent.get(old, now) < ERROR_SUBJECT_WINDOW and (
                len(recent) < MAX_ERROR_SUBJECTS
            ):
                break
            recent.pop(old, None)
        key = (flag, variant, subject)
        when = recent.get(key)
        if when is not None and now - when < ERROR_SUBJECT_WINDOW:
            return False
        recent.pop(key, None)  # re-inserted last: the dict stays in time order
        recent[key] = now
        return True


#: the process's outcome book, fed by every adapter's one-line setup
book = _process_book = OutcomeBook()
#: a decision the book does not count (constant flag, override, no variant)
_SKIP: Any = object()


class OutcomeRecorder:
    """The request listener that feeds an :class:`OutcomeBook` at each request's end.

    Adapters install one for :data:`book` by themselves; give ``listeners=[OutcomeRecorder(b)]``
    to feed another book instead.
    """

    __slots__ = ("book",)

    #: not told of each flag read (a middleware calls only on_request_end): the book counts a
    #: request's decisions at its end, so a read costs nothing more with the book
    hears_decisions = False
    #: a request that read no flag has nothing to count: its end need not be reported
    ends_need_reads = True

    def __init__(self, book: OutcomeBook | None = None) -> None:
        self.book = book if book is not None else _process_book

    def on_decision(self, flags: Any, decision: Decision) -> None:
        """Nothing per read (and a middleware does not call it: ``hears_decisions``)."""

    def wants_end(self, flags: Any) -> bool:
        """Only a request that read a flag has anything to count."""
        return bool(flags._decisions)

    def on_request_end(self, flags: Any, status: int | None, error: BaseException | None) -> None:
        """Count the request once for each counted variant it was served."""
        decisions = flags._decisions  # the slot behind .decisions: this runs per request
        if not decisions:
            return
        book = self.book
        key = tuple(map(id, decisions.values()))
        combo = book._combos.get(key)
        if combo is None:
            combo = book._combo(flags, key)
        if not combo.tallies:
            return
        seconds = time.perf_counter() - flags.started
        ln = math.log(seconds) if seconds > 0.0 else _LN_MIN
        i = int((ln - _LN_MIN) * _PER_LN)
        combo.buckets[0 if i < 0 else (i if i < _TOP else _TOP)] += 1
        combo.log_sum += ln
        combo.log_sq_sum += ln * ln
        if error is not None or (status is not None and status >= 500):
            book._failed(flags, combo.tallies)


def report(source: OutcomeBook | OutcomeSnapshot | None = None) -> list[dict[str, Any]]:
    """One row per (flag, variant) of the book (default: the process's), for a page or a log:
    ``flag``, ``variant``, ``requests``, ``errors``, ``error_rate``, ``error_subjects``,
    ``p50_ms``, ``p95_ms``, ``p99_ms`` (None with no request). Only flags whose decision can
    differ between subjects are in the book, so these are the split (and ruled) flags."""
    if source is None:
        source = book
    snap = source.snapshot() if isinstance(source, OutcomeBook) else source
    rows = []
    for flag, variant, s in snap:
        ms = [None if q is None else round(q * 1000, 3) for q in (s.p50, s.p95, s.p99)]
        rows.append(
            {
                "flag": flag,
                "variant": variant,
                "requests": s.requests,
                "errors": s.errors,
                "error_rate": s.error_rate,
                "error_subjects": s.error_subjects,
                "p50_ms": ms[0],
                "p95_ms": ms[1],
                "p99_ms": ms[2],
            }
        )
    return rows
