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


class _Tally:
    """The live, mutable sums of one (flag, variant)."""

    __slots__ = ("buckets", "error_subjects", "errors", "log_sq_sum", "log_sum", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.error_subjects = 0
        self.log_sum = 0.0
        self.log_sq_sum = 0.0
        self.buckets = [0] * BUCKETS

    def stats(self) -> VariantStats:
        buckets = tuple(self.buckets)
        return VariantStats(
            self.requests,
            self.errors,
            self.error_subjects,
            self.log_sum,
            self.log_sq_sum,
            buckets if self.requests else (),
        )


class OutcomeBook:
    """Per-(flag, variant) outcome sums of one process; fed by :class:`OutcomeRecorder`.

    ``clock`` (monotonic seconds) is what the error-subject window is measured with.
    """

    __slots__ = ("_clock", "_mark", "_recent", "_tallies", "_warned", "dropped")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: flag -> variant -> tally
        self._tallies: dict[str, dict[str, _Tally]] = {}
        #: (flag, variant, subject key) -> when its error was counted (oldest first)
        self._recent: dict[tuple[str, str, str], float] = {}
        self._mark = OutcomeSnapshot()
        self._warned = False
        #: flag reads left out because the book was full (MAX_FLAGS / MAX_VARIANTS)
        self.dropped = 0

    # -- reading ---------------------------------------------------------------------------
    def read(self, flag: str) -> Mapping[str, VariantStats]:
        """``{variant: VariantStats}`` of ``flag`` since the process started."""
        variants = self._tallies.get(flag)
        if not variants:
            return {}
        return {v: t.stats() for v, t in list(variants.items())}

    def snapshot(self) -> OutcomeSnapshot:
        """Every flag's totals since the process started (never resets)."""
        return OutcomeSnapshot({flag: self.read(flag) for flag in list(self._tallies)}, time.time())

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
            t = variants.setdefault(variant, _Tally())
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
_MISS: Any = object()


class OutcomeRecorder:
    """The request listener that feeds an :class:`OutcomeBook` at each request's end.

    Adapters install one for :data:`book` by themselves; give ``listeners=[OutcomeRecorder(b)]``
    to feed another book instead.
    """

    __slots__ = ("_held", "_tallies", "book")

    def __init__(self, book: OutcomeBook | None = None) -> None:
        self.book = book if book is not None else _process_book
        #: id(decision) -> its tally, or None when the decision is not counted. Decisions are
        #: prebuilt and shared by requests; _held keeps each alive so its id stays its own.
        self._tallies: dict[int, _Tally | None] = {}
        self._held: list[Decision] = []

    def on_decision(self, flags: Any, decision: Decision) -> None:
        """Nothing per read: the request's decisions are counted at its end."""

    def wants_end(self, flags: Any) -> bool:
        """Only a request that read a flag has anything to count."""
        return bool(flags.decisions)

    def on_request_end(self, flags: Any, status: int | None, error: BaseException | None) -> None:
        """Count the request once for each counted variant it was served."""
        decisions = flags.decisions
        if not decisions:
            return
        seconds = time.perf_counter() - flags.started
        ln = math.log(seconds) if seconds > 0.0 else _LN_MIN
        i = int((ln - _LN_MIN) * _PER_LN)
        i = 0 if i < 0 else (i if i < _TOP else _TOP)
        failed = error is not None or (status is not None and status >= 500)
        sq = ln * ln
        tallies = self._tallies
        for d in decisions.values():
            t = tallies.get(id(d), _MISS)
            if t is None:
                continue
            if t is _MISS:
                t = self._learn(flags, d)
                if t is None:
                    continue
            t.requests += 1
            t.log_sum += ln
            t.log_sq_sum += sq
            t.buckets[i] += 1
            if failed:
                t.errors += 1
                subject = flags.subject.key
                if self.book.first_error(d.key, d.variant or "", subject):
                    t.error_subjects += 1

    def _learn(self, flags: Any, d: Decision) -> _Tally | None:
        """Whether ``d`` counts, and where: a variable flag's variant, served by its rules."""
        if d.reason in (Reason.ERROR, Reason.UNKNOWN_FLAG):
            return None  # built per request: not worth caching
        counted = (
            d.reason in _COUNTED
            and d.variant is not None
            # a constant flag's one decision (no rules, killed, "serve" to all)
            and flags.snapshot._constants.get(d.key) is not d
        )
        tallies = self._tallies
        if len(tallies) >= _CACHE_SIZE:  # decisions of old snapshots
            tallies.clear()
            self._held.clear()
        t = self.book.tally(d.key, d.variant) if counted and d.variant is not None else None
        tallies[id(d)] = t
        self._held.append(d)
        return t


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
