"""The outcome book (rampup.outcomes): what it counts, its quantiles, its windows and bounds,
fed through the real WSGI middleware (no OpenTelemetry involved)."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

import rampup
from rampup import Flags, Subject, outcomes
from rampup.outcomes import (
    BUCKETS,
    ERROR_SUBJECT_WINDOW,
    OutcomeBook,
    OutcomeRecorder,
    OutcomeSnapshot,
    VariantStats,
    bucket_bounds,
    report,
)
from rampup.wsgi import RampupMiddleware

FLAGS = {
    "version": 1,
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "ruled": {
            "default": "off",
            "rules": [
                {"conditions": [{"attribute": "key", "op": "in", "value": ["vip"]}], "serve": "on"}
            ],
        },
        "constant": {"default": "on"},
        "everyone": {"rules": [{"serve": "on"}]},
        "killed": {"killed": True, "rules": [{"split": {"on": 50, "off": 50}}]},
    },
}


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(book: OutcomeBook, **options: Any) -> Callable[..., int]:
    """A WSGI app behind the middleware feeding ``book``; returns a function sending one
    request (path, user, flags to read) and giving the status (500 when the view raised)."""

    def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        f = environ["rampup.flags"]
        for key in environ["test.read"]:
            f.variant(key)
        if environ["PATH_INFO"] == "/raise":
            raise RuntimeError("boom")
        status = "503 Unavailable" if environ["PATH_INFO"] == "/503" else "200 OK"
        start_response(status, [])
        return [b""]

    app = RampupMiddleware(
        view,
        flags=FLAGS,
        user_header="X-User",
        watch=False,
        telemetry=False,
        listeners=[OutcomeRecorder(book)],
        **options,
    )

    def send(
        path: str = "/", user: str = "u", read: tuple[str, ...] = ("split",), **hdr: str
    ) -> int:
        environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)
        environ["HTTP_X_USER"] = user
        environ["test.read"] = read
        for name, value in hdr.items():
            environ["HTTP_" + name.upper()] = value
        seen: list[str] = []
        try:
            body = app(environ, lambda s, h, e=None: seen.append(s))
            list(body)
        except RuntimeError:
            return 500
        return int(seen[-1][:3])

    return send


def variant_of(key: str, user: str) -> str | None:
    return Flags(rampup.load(FLAGS), Subject(user)).variant(key)


def test_counts_each_variant_served_of_flags_that_can_differ() -> None:
    """Splits and rules are counted per variant served; constant, "serve to all" and killed
    flags are not; a flag read twice counts once per request."""
    book = OutcomeBook()
    send = serve(book)
    users = [f"user-{i}" for i in range(40)]
    for user in users:
        send(user=user, read=("split", "split", "ruled", "constant", "everyone", "killed"))
    send(user="vip", read=("ruled",))
    split = book.read("split")
    expected = {v: sum(variant_of("split", u) == v for u in users) for v in ("on", "off")}
    assert {v: s.requests for v, s in split.items()} == expected
    assert {v: s.requests for v, s in book.read("ruled").items()} == {"off": 40, "on": 1}
    assert book.flags() == ["split", "ruled"]
    assert book.read("constant") == {} == book.read("everyone") == book.read("killed")


def test_errors_are_5xx_or_an_exception_on_the_variants_served() -> None:
    """A raising view and a 5xx response are errors of every counted variant served."""
    book = OutcomeBook()
    send = serve(book)
    assert send("/raise", user="vip", read=("ruled",)) == 500
    assert send("/503", user="a", read=("ruled",)) == 503
    send("/", user="b", read=("ruled",))
    ruled = book.read("ruled")
    assert (ruled["on"].requests, ruled["on"].errors) == (1, 1)
    assert (ruled["off"].requests, ruled["off"].errors, ruled["off"].error_rate) == (2, 1, 0.5)


def test_a_subjects_retries_count_once_within_the_window() -> None:
    """error_subjects: a subject's errors on one variant within 60 s count once; another
    subject counts; after the window the same subject counts again."""
    clock = Clock()
    book = OutcomeBook(clock=clock)
    send = serve(book)
    for _ in range(3):
        send("/raise", user="vip", read=("ruled",))
        clock.now += 10
    send("/raise", user="vip2", read=("ruled",))
    on, off = book.read("ruled")["on"], book.read("ruled")["off"]
    assert (on.errors, on.error_subjects) == (3, 1)
    assert (off.errors, off.error_subjects) == (1, 1)
    clock.now += ERROR_SUBJECT_WINDOW
    send("/raise", user="vip", read=("ruled",))
    assert book.read("ruled")["on"].error_subjects == 2


def test_the_error_subject_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ERROR_SUBJECTS, the oldest subject is forgotten (and counts again)."""
    monkeypatch.setattr(outcomes, "MAX_ERROR_SUBJECTS", 3)
    book = OutcomeBook(clock=Clock())
    for user in ["a", "b", "c", "d"]:
        assert book.first_error("f", "on", user)
    assert len(book._recent) == 3
    assert book.first_error("f", "on", "a")  # forgotten: counts again
    assert not book.first_error("f", "on", "d")
    assert book.first_error("f", "on", None)  # no key: nothing to tell them apart


def test_qa_overrides_are_kept_out() -> None:
    """A variant a QA override forced is not counted; the same request's other flags are."""
    book = OutcomeBook()
    send = serve(book, overrides="open", debug=True)
    send(user="b", read=("ruled", "split"), x_rampup_override="ruled=on")
    assert book.read("ruled") == {}
    assert sum(s.requests for s in book.read("split").values()) == 1


def test_requests_without_a_flag_read_or_outside_a_request_are_not_counted() -> None:
    """A request that reads no flag, and a Flags built by hand (no request), count nothing."""
    book = OutcomeBook()
    serve(book)(read=())
    f = Flags(rampup.load(FLAGS), Subject("vip"), listeners=(OutcomeRecorder(book),))
    assert f.variant("ruled") == "on"
    assert book.snapshot().flags == {}


def test_quantiles_are_within_5_percent_of_exact_quantiles() -> None:
    """On seeded synthetic latencies (log-normal around 30 ms, 1 ms to 20 s), p50/p95/p99
    read from the histogram are within 5 % of the exact quantiles; the sums are exact."""
    rng = random.Random(20261202)
    latencies = [
        min(20.0, max(0.001, rng.lognormvariate(math.log(0.03), 1.2))) for _ in range(5000)
    ]
    book = OutcomeBook()
    t = book.tally("f", "on")
    assert t is not None
    for x in latencies:
        ln = math.log(x)
        t.log_sum += ln
        t.log_sq_sum += ln * ln
        t.buckets[int((ln - outcomes._LN_MIN) * outcomes._PER_LN)] += 1
    stats = book.read("f")["on"]
    ordered = sorted(latencies)
    for q, got in ((0.5, stats.p50), (0.95, stats.p95), (0.99, stats.p99)):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert got is not None
        assert abs(got - exact) / exact < 0.05, (q, got, exact)
    assert stats.requests == 5000
    assert stats.log_sum == pytest.approx(sum(math.log(x) for x in latencies))


def test_the_histogram_spans_a_tenth_of_a_millisecond_to_100_seconds() -> None:
    """About 160 buckets of base 2^(1/8): the first starts at or below 0.1 ms, the last ends
    at or above 100 s, and each bucket is 2^(1/8) times the previous one."""
    assert 155 <= BUCKETS <= 165
    assert bucket_bounds(0)[0] <= 1e-4 < bucket_bounds(0)[1]
    assert bucket_bounds(BUCKETS - 1)[0] <= 100.0 < bucket_bounds(BUCKETS - 1)[1]
    low, high = bucket_bounds(10)
    assert high / low == pytest.approx(2 ** (1 / 8))


def test_requests_are_timed_into_the_histogram() -> None:
    """A request's latency lands in one bucket and in the log sums (a real request through
    the middleware is well under a second and over 0.1 ms... or clamped to the first)."""
    book = OutcomeBook()
    serve(book)(user="vip", read=("ruled",))
    on = book.read("ruled")["on"]
    assert sum(on.buckets) == on.requests == 1
    assert on.p50 is not None
    assert 1e-5 < on.p50 < 1.0
    assert on.log_sum < 0  # ln of seconds under one second
    assert on.log_sq_sum == pytest.approx(on.log_sum**2)


def test_books_merge_by_adding_and_take_gives_windows() -> None:
    """Two processes' snapshots add up; take() gives what happened since the previous take,
    while snapshot() keeps the totals."""
    a, b = OutcomeBook(), OutcomeBook()
    serve(a)(user="vip", read=("ruled",))
    for user in ("x", "y"):
        serve(b)(user=user, read=("ruled",))
    merged = a.snapshot() + b.snapshot()
    assert {v: s.requests for v, s in merged.read("ruled").items()} == {"on": 1, "off": 2}
    first = a.take()
    assert first.read("ruled")["on"].requests == 1
    send = serve(a)
    send("/raise", user="vip", read=("ruled",))
    second = a.take()
    assert (second.read("ruled")["on"].requests, second.read("ruled")["on"].errors) == (1, 1)
    assert a.snapshot().read("ruled")["on"].requests == 2
    assert a.take().read("ruled")["on"] == VariantStats()
    assert list(merged) == [
        ("ruled", "on", merged.read("ruled")["on"]),
        ("ruled", "off", merged.read("ruled")["off"]),
    ]


def test_variant_stats_add_and_subtract() -> None:
    """VariantStats is a sum: a + b - b == a, bucket by bucket."""
    a = VariantStats(3, 1, 1, -3.0, 4.0, (1, 2) + (0,) * (BUCKETS - 2))
    b = VariantStats(1, 0, 0, -1.0, 1.0, (0, 1) + (0,) * (BUCKETS - 2))
    assert (a + b) - b == a
    assert (a + b).requests == 4
    assert VariantStats().p99 is None
    assert VariantStats().error_rate == 0.0
    with pytest.raises(ValueError, match="0 < q <= 1"):
        a.quantile(0)


def test_the_number_of_flags_is_capped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past MAX_FLAGS (or MAX_VARIANTS of a flag) nothing new is tracked: counted in
    dropped, with one warning."""
    monkeypatch.setattr(outcomes, "MAX_FLAGS", 1)
    monkeypatch.setattr(outcomes, "MAX_VARIANTS", 1)
    book = OutcomeBook()
    send = serve(book)
    send(user="vip", read=("ruled", "split"))
    send(user="x", read=("ruled",))
    assert book.flags() == ["ruled"]
    assert list(book.read("ruled")) == ["on"]
    assert book.dropped == 2
    assert caplog.text.count("tracks at most") == 1


def test_many_combinations_are_folded_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_COMBOS distinct combinations of decisions, they are folded into their
    variants: the totals stay exact."""
    monkeypatch.setattr(outcomes, "MAX_COMBOS", 2)
    book = OutcomeBook()
    send = serve(book)
    orders = [("ruled", "split"), ("split", "ruled"), ("ruled",), ("split",)] * 3
    for read in orders:
        send(user="vip", read=read)
    assert len(book._combos) <= 2
    assert book.read("ruled")["on"].requests == 9
    assert sum(s.requests for s in book.read("split").values()) == 9


def test_report_rows_for_a_page() -> None:
    """report() gives one row per (flag, variant), with the error rate and p99 in ms."""
    book = OutcomeBook()
    send = serve(book)
    send("/raise", user="vip", read=("ruled",))
    send(user="x", read=("ruled",))
    rows = report(book)
    assert [(r["flag"], r["variant"], r["requests"], r["error_rate"]) for r in rows] == [
        ("ruled", "on", 1, 1.0),
        ("ruled", "off", 1, 0.0),
    ]
    assert all(r["p99_ms"] > 0 for r in rows)
    assert report(OutcomeSnapshot()) == []
    assert isinstance(report(), list)  # the process's book


def test_the_process_book_is_fed_by_the_one_line_setup() -> None:
    """With no listener argument, the middleware feeds rampup.outcomes.book."""
    key = "outcomes-one-line"
    flags = {"flags": {key: {"rules": [{"split": {"on": 50, "off": 50}}]}}}

    def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["rampup.flags"].variant(key)
        start_response("200 OK", [])
        return [b""]

    app = RampupMiddleware(view, flags=flags, user_header="X-User", watch=False)
    for i in range(10):
        environ: dict[str, Any] = {"wsgi.input": io.BytesIO(), "HTTP_X_USER": f"u{i}"}
        setup_testing_defaults(environ)
        list(app(environ, lambda *a: None))
    assert sum(s.requests for s in outcomes.book.read(key).values()) == 10


def test_a_request_with_a_failed_decision_is_still_counted() -> None:
    """A request that also read an unknown flag (a decision built per request) still counts
    its other variants, every time."""
    book = OutcomeBook()
    send = serve(book)
    for _ in range(3):
        send(user="vip", read=("no-such-flag", "ruled"))
    assert book.read("ruled")["on"].requests == 3
    assert book.read("no-such-flag") == {}
