"""The guard's reader of an outcome book: :class:`BookReader` turns a process's
:class:`~rampup.outcomes.OutcomeBook` (cumulative per-variant sums, error subjects, latency sums
and histogram) into what :class:`~rampup.guard.Guard` reads.

Core module: standard library only. The fleet reader (``guard_fleet``) reads the same sums
summed over processes from Redis; :func:`counts_of` and :func:`slow_count` are shared by both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .guard_types import VariantCounts
from .outcomes import OutcomeBook, VariantStats, bucket_bounds
from .outcomes import book as process_book

__all__ = ["BookReader", "counts_of", "slow_count"]


def counts_of(stats: VariantStats) -> VariantCounts:
    """The guard's sums of one variant: every request the book counts is timed."""
    return VariantCounts(
        stats.requests,
        stats.errors,
        stats.error_subjects,
        stats.requests,
        stats.log_sum,
        stats.log_sq_sum,
    )


def slow_count(buckets: Sequence[int], seconds: float) -> int:
    """Requests in the histogram buckets that lie wholly above ``seconds``.

    The frozen p99 is a bucket's geometric middle, so the bucket holding it is not counted:
    "slower than the p99" means "in a slower bucket", the same for every process and reader.
    """
    return sum(n for i, n in enumerate(buckets) if n and bucket_bounds(i)[0] >= seconds)


class BookReader:
    """An :class:`~rampup.guard.OutcomeReader` over an outcome book (default: the process's
    :data:`rampup.outcomes.book`, which every adapter's one-line setup feeds)."""

    def __init__(self, book: OutcomeBook | None = None) -> None:
        self.book = book if book is not None else process_book

    def counts(self, flag: str) -> Mapping[str, VariantCounts]:
        """Each variant's sums since the process started."""
        return {v: counts_of(s) for v, s in self.book.read(flag).items()}

    def quantile(self, flag: str, variant: str, q: float) -> float | None:
        """The variant's latency quantile from the book's histogram (None before a request)."""
        stats = self.book.read(flag).get(variant)
        return None if stats is None else stats.quantile(q)

    def slower_than(self, flag: str, variant: str, seconds: float) -> int:
        """The variant's requests in histogram buckets above ``seconds``."""
        stats = self.book.read(flag).get(variant)
        return 0 if stats is None else slow_count(stats.buckets, seconds)
