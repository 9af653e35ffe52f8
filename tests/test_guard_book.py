"""The guard in one process over the real outcome book: ``rampup.guard.start(app)`` reads
the book the middleware feeds and kills a failing rollout in this process."""

from __future__ import annotations

import time
from typing import Any

import rampup
from rampup.guard import start
from rampup.guard_book import BookReader, counts_of
from rampup.outcomes import OutcomeBook, OutcomeRecorder
from rampup.wsgi import RampupMiddleware

FLAG = "guard-book-checkout"  # its own name: the process's book is shared by the suite
DOC = {"flags": {FLAG: {"rules": [{"rollout": {"stages": [50, 100], "hold": 1}}]}}}


def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    on = rampup.flags.enabled(FLAG)
    start_response("500 Oops" if on else "200 OK", [])
    return [b""]


def call(app: Any, user: int) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_USER": str(user)}
    b"".join(app(environ, lambda *a: None))


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a guard against hanging, not a threshold
    while not condition():
        assert time.monotonic() < deadline, "condition still false"
        time.sleep(0.01)


def test_start_guards_a_single_process_app_from_its_book() -> None:
    """One line starts the guard on the middleware's source and the process's outcome book; a
    treatment failing every request is killed in this process, with the guard's reason."""
    app = RampupMiddleware(view, flags=DOC, user_header="X-User")
    guard = start(app, interval=0.02)
    try:
        wait_until(lambda: FLAG in guard.states)  # the stage started: counts from here
        for user in range(400):
            call(app, user)
        source = app.runtime.source
        wait_until(lambda: source.snapshot.flags[FLAG].killed)
        assert guard.states[FLAG].reason.startswith("guard: on errors")
    finally:
        guard.stop()


def test_start_watches_only_when_told_not_to_act() -> None:
    """``act=False``: the guard decides and tells, but the flag stays as it is."""
    book = OutcomeBook()
    app = RampupMiddleware(view, flags=DOC, user_header="X-User", listeners=[OutcomeRecorder(book)])
    told: list[str] = []
    guard = start(
        app.runtime.source,
        book,
        act=False,
        interval=0.02,
        on_decision=lambda s: told.append(s.verdict),
    )
    try:
        wait_until(lambda: FLAG in guard.states)
        for user in range(400):
            call(app, user)
        wait_until(lambda: "halt" in told)
        assert not app.runtime.source.snapshot.flags[FLAG].killed
    finally:
        guard.stop()


def test_the_book_reader_reads_sums_and_the_histogram() -> None:
    """Requests, deduplicated error subjects and latency sums come from the book; the tail
    count is the requests in histogram buckets above the given seconds."""
    probe = OutcomeBook()
    app = RampupMiddleware(
        view, flags=DOC, user_header="X-User", listeners=[OutcomeRecorder(probe)]
    )
    on_user = next(u for u in range(100) if call(app, u) or probe.read(FLAG).get("on"))
    book = OutcomeBook()
    app = RampupMiddleware(view, flags=DOC, user_header="X-User", listeners=[OutcomeRecorder(book)])
    for user in [on_user] * 3 + list(range(1000, 1020)):
        call(app, user)
    reader = BookReader(book)
    stats = book.read(FLAG)
    counts = reader.counts(FLAG)
    assert counts == {v: counts_of(s) for v, s in stats.items()}
    assert sum(c.requests for c in counts.values()) == 23
    on = counts["on"]
    assert on.errors == on.requests  # every `on` request fails here
    assert on.error_subjects == on.errors - 2  # the repeated subject counts once
    assert on.lat_n == on.requests
    assert reader.quantile(FLAG, "on", 0.5) == stats["on"].quantile(0.5)
    assert reader.slower_than(FLAG, "on", 0.0) == on.requests
    assert reader.slower_than(FLAG, "on", 1e6) == 0
    assert reader.quantile(FLAG, "nobody", 0.5) is None
    assert reader.slower_than(FLAG, "nobody", 0.1) == 0
