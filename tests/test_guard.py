"""The guard component: halt, advance, hold, latency, callbacks, state, thread and fork."""

from __future__ import annotations

import json
import logging
import math
import os
import select
import threading
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import rampup
from rampup.guard import Guard, SnapshotActions, StageState, Status, VariantCounts
from rampup.model import Subject
from rampup.sources import StaticSource

HOUR = 3600.0


def flags(**rollout: Any) -> rampup.Snapshot:
    """One boolean flag ``f`` with a guarded rollout (1, 5, 25, 100 %), 30 min hold."""
    spec = {"stages": [1, 5, 25, 100], "hold": "30m", **rollout}
    return rampup.load({"flags": {"f": {"rules": [{"rollout": spec}]}}})


class Book:
    """A stand-in outcome book: cumulative sums the test adds to."""

    def __init__(self) -> None:
        self.sums: dict[str, VariantCounts] = {"on": VariantCounts(), "off": VariantCounts()}
        self.p99 = 0.5
        self.slow = {"on": 0, "off": 0}

    def add(self, variant: str, requests: int, errors: int, log_latency: float = -2.0) -> None:
        c = self.sums[variant]
        c.requests += requests
        c.error_subjects += errors
        c.errors += errors
        c.lat_n += requests
        # spread the log-latencies +-0.5 around log_latency (half each side)
        c.lat_sum += requests * log_latency
        c.lat_sumsq += requests * (log_latency**2 + 0.25)

    def counts(self, flag: str) -> Mapping[str, VariantCounts]:
        return self.sums

    def quantile(self, flag: str, variant: str, q: float) -> float | None:
        return self.p99

    def slower_than(self, flag: str, variant: str, seconds: float) -> int:
        return self.slow[variant]


def setup(**rollout: Any) -> tuple[StaticSource, Book, Guard, list[Status]]:
    source = StaticSource(flags(**rollout))
    book = Book()
    seen: list[Status] = []
    guard = Guard(source, book, SnapshotActions(source), on_decision=seen.append, clock=lambda: 0)
    guard.step(0.0)
    return source, book, guard, seen


def share_on(snapshot: rampup.Snapshot) -> float:
    on = sum(snapshot.evaluate("f", Subject(str(i))).variant == "on" for i in range(4000))
    return on / 4000


def test_a_bad_treatment_is_killed_with_a_reason() -> None:
    """Treatment errors at 5x the control's: the flag ends killed, the reason names the ratio,
    E and the requests, and the callback hears the halt once."""
    source, book, guard, seen = setup()
    now = 0.0
    for _ in range(60):
        now += 10
        book.add("on", 20, 2)
        book.add("off", 2000, 40)
        guard.step(now)
    assert source.snapshot.flags["f"].killed
    halts = [s for s in seen if s.verdict == "halt"]
    assert len(halts) == 1
    assert halts[0].reason.startswith("guard: on errors 5.0x off, E=")
    assert "requests" in halts[0].reason
    assert halts[0].e >= 100
    guard.step(now + 10)
    assert guard.states["f"].verdict == "killed"
    assert guard.states["f"].reason == halts[0].reason


def test_a_healthy_treatment_advances_after_the_hold() -> None:
    """Equal error rates: no advance before the 30 min hold, then stage 1 (5 %) is served and
    subjects served on at 1 % still are."""
    source, book, guard, seen = setup()
    before = {i for i in range(4000) if source.snapshot.evaluate("f", Subject(str(i))).enabled}
    now = 0.0
    while now < 40 * 60 and source.snapshot.flags["f"].rules[0].rollout.stage == 0:  # type: ignore[union-attr]
        now += 10
        book.add("on", 20, 1)
        book.add("off", 1980, 99)
        guard.step(now)
    assert 30 * 60 <= now <= 31 * 60
    assert [s.verdict for s in seen if s.verdict != "hold"] == ["advance"]
    after = {i for i in range(4000) if source.snapshot.evaluate("f", Subject(str(i))).enabled}
    assert before < after
    assert 0.03 < share_on(source.snapshot) < 0.07
    state = guard.states["f"]
    assert state.index == 1
    assert state.started_at == now
    assert state.carried != [0.0, 0.0]  # stage 0's evidence carried into stage 1


def test_no_advance_before_not_before() -> None:
    """A date in not_before for the next stage keeps the flag at its stage, and says so."""
    _, book, guard, _ = setup(not_before=["2026-01-01", "2999-01-01"])
    book.add("on", 8000, 40)
    book.add("off", 792000, 4000)
    (status,) = guard.step(HOUR)
    assert status.verdict == "hold"
    assert status.waiting_for == ("not before 2999-01-01T00:00:00+00:00",)


def test_sample_ratio_mismatch_holds() -> None:
    """3 % of requests reach a 1 % treatment: hold, naming the sample ratio, and tell."""
    _, book, guard, seen = setup()
    book.add("on", 6000, 30)
    book.add("off", 194000, 970)
    (status,) = guard.step(HOUR)
    guard.step(HOUR + 10)
    assert seen == [status]  # told once
    assert status.verdict == "hold"
    assert status.srm_p < 0.001
    assert status.waiting_for[0].startswith("sample ratio: 3 % of requests to on, configured 1 %")


def test_status_shows_what_a_hold_waits_for() -> None:
    """Early in a stage: the hold, the minimum requests and the advance evidence."""
    _, book, guard, _ = setup()
    book.add("on", 10, 0)
    book.add("off", 990, 20)
    (status,) = guard.status(600.0)
    assert status.verdict == "hold"
    assert [w.split(" (")[0] for w in status.waiting_for] == [
        "the hold",
        "1,000 on requests",
        "evidence that on errors are under 2x off: E_adv 1.2 of 20",
    ]
    assert status.counts["on"].requests == 10
    assert status.e_adv < 20


def test_the_last_stage_is_done() -> None:
    """At 100 % there is no control left: the verdict is done and nothing acts."""
    source, _, guard, _seen = setup(stage=3)
    (status,) = guard.step(HOUR)
    assert status.verdict == "done"
    assert not source.snapshot.flags["f"].killed


def test_a_failing_callback_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """The user's callback raises: the flag is still killed and the failure is logged."""
    source = StaticSource(flags())
    book = Book()

    def boom(status: Status) -> None:
        raise RuntimeError("chat is down")

    guard = Guard(source, book, SnapshotActions(source), on_decision=boom)
    guard.step(0.0)
    book.add("on", 1000, 100)
    book.add("off", 99000, 990)
    with caplog.at_level(logging.WARNING, "rampup.guard"):
        guard.step(60.0)
    assert source.snapshot.flags["f"].killed
    assert "on_decision callback failed" in caplog.text
    assert "halt f at stage 0" in caplog.text


def test_watch_only_alerts_once_and_changes_nothing() -> None:
    """Without actions (a file shared by processes) a halt is reported once, nothing killed."""
    source = StaticSource(flags())
    book = Book()
    seen: list[Status] = []
    guard = Guard(source, book, None, on_decision=seen.append)
    guard.step(0.0)
    book.add("on", 1000, 100)
    book.add("off", 99000, 990)
    guard.step(60.0)
    guard.step(70.0)
    assert [s.verdict for s in seen] == ["halt"]
    assert not source.snapshot.flags["f"].killed


def test_a_stage_moved_elsewhere_starts_a_fresh_stage() -> None:
    """Someone moves the stage (a person, another process through the store): the guard starts
    the new stage from that moment, with the counts of then as its baseline."""
    source, book, guard, _ = setup()
    book.add("on", 100, 1)
    book.add("off", 9900, 99)
    guard.step(100.0)
    source.snapshot = flags(stage=2)
    (status,) = guard.step(200.0)
    assert status.stage == 2
    assert status.seconds_in_stage == 0.0
    assert status.counts["on"].requests == 0


def test_state_round_trips_through_json() -> None:
    """A stage state survives JSON (what a store persists) and a new guard resumes from it."""
    source, book, guard, _ = setup()
    book.add("on", 100, 3)
    book.add("off", 9900, 99)
    guard.step(100.0)
    saved = json.dumps({k: s.to_dict() for k, s in guard.states.items()})
    restored = {k: StageState.from_dict(v) for k, v in json.loads(saved).items()}
    assert restored == guard.states
    again = Guard(source, book, None, states=restored)
    assert again.status(100.0) == guard.status(100.0)


def test_mean_latency_regression_halts_after_the_first_minute() -> None:
    """Treatment 25 % slower (geometric mean): nothing in the first minute, then a halt that
    names the slowdown."""
    source, book, guard, seen = setup(guard={"latency": "mean", "errors": False})
    now = 0.0
    while now < 600 and not source.snapshot.flags["f"].killed:
        now += 10
        book.add("on", 20, 0, log_latency=math.log(0.125))
        book.add("off", 1980, 0, log_latency=math.log(0.1))
        guard.step(now)
    assert source.snapshot.flags["f"].killed
    assert now > 70  # the first minute is skipped, then the baseline is read
    assert "latency 25% slower than off" in seen[-1].reason


def test_tail_latency_regression_halts() -> None:
    """Requests slower than the control's p99 (frozen after the first minute) 5x as often in
    the treatment: halt, naming the threshold."""
    source, book, guard, seen = setup(guard={"latency": "p99", "errors": False})
    now = 0.0
    while now < 1200 and not source.snapshot.flags["f"].killed:
        now += 10
        book.add("on", 20, 0)
        book.add("off", 1980, 0)
        book.slow["on"] += 1
        book.slow["off"] += 20
        guard.step(now)
    assert source.snapshot.flags["f"].killed
    assert guard.states["f"].p99 == 0.5
    assert "on requests slower than 0.5 s 5.0x off" in seen[-1].reason


def test_decisions_are_opentelemetry_events() -> None:
    """A halt is emitted as a rampup.guard.decision span event (real SDK, in-memory)."""
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    source = StaticSource(flags())
    book = Book()
    guard = Guard(source, book, SnapshotActions(source), tracer_provider=tp)
    guard.step(0.0)
    book.add("on", 1000, 100)
    book.add("off", 99000, 990)
    guard.step(60.0)
    (span,) = spans.get_finished_spans()
    (event,) = span.events
    assert event.name == "rampup.guard.decision"
    assert event.attributes is not None
    assert event.attributes["rampup.guard.verdict"] == "halt"
    assert event.attributes["feature_flag.key"] == "f"
    tp.shutdown()


def test_the_thread_steps_until_stopped() -> None:
    """start() runs step() in a daemon thread every interval; stop() ends it."""
    source = StaticSource(flags())
    book = Book()
    stepped = threading.Event()
    guard = Guard(source, book, SnapshotActions(source), interval=0.01, on_decision=None)
    guard.step = lambda now=None: stepped.set() or []  # type: ignore[method-assign]
    guard.start()
    try:
        assert stepped.wait(10)
        assert guard.running
    finally:
        guard.stop()
    assert not guard.running


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_runs_its_own_guard() -> None:
    """After fork() the child's guard thread is restarted (threads do not survive a fork)."""
    source = StaticSource(flags())
    guard = Guard(source, Book(), None, interval=0.01)
    guard.start()
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return
            code = 1
            try:
                os.write(write_end, f"running={guard.running}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 30)
        report = os.read(read_end, 100).decode() if ready else "no report"
        os.waitpid(pid, 0)
    finally:
        guard.stop()
        os.close(read_end)
    assert report == "running=True"


def test_status_to_dict_is_json() -> None:
    """A status serialises to JSON with counts per variant."""
    _, book, guard, _ = setup()
    book.add("on", 10, 1)
    (status,) = guard.status(5.0)
    data = json.loads(json.dumps(status.to_dict()))
    assert data["counts"]["on"]["requests"] == 10
    assert data["verdict"] == "hold"
    assert data["stages"] == [1, 5, 25, 100]


def test_not_before_dates_are_utc() -> None:
    """Bare dates in not_before mean midnight UTC."""
    snap = flags(not_before=["2026-12-03"])
    rollout = snap.flags["f"].rules[0].rollout
    assert rollout is not None
    assert rollout.not_before == (datetime(2026, 12, 3, tzinfo=timezone.utc),)
    assert time.time() > 0  # (the clock is injectable; nothing here reads it)


def test_watch_only_recommends_an_advance_once() -> None:
    """Without actions a healthy stage is recommended for advancing once; the stage stays."""
    source = StaticSource(flags())
    book = Book()
    seen: list[Status] = []
    guard = Guard(source, book, None, on_decision=seen.append)
    guard.step(0.0)
    book.add("on", 8000, 40)
    book.add("off", 792000, 4000)
    guard.step(HOUR)
    guard.step(HOUR + 10)
    assert [s.verdict for s in seen] == ["advance"]
    assert seen[0].reason.startswith("guard: on 1 % -> 5 %, E_adv=")
    assert source.snapshot.flags["f"].rules[0].rollout.stage == 0  # type: ignore[union-attr]


def test_a_failed_kill_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    """The store is down at the first kill: logged, and the next look kills."""
    source = StaticSource(flags())

    class Flaky(SnapshotActions):
        calls = 0

        def kill(self, flag: str, reason: str) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("store unreachable")
            super().kill(flag, reason)

    book = Book()
    guard = Guard(source, book, Flaky(source))
    guard.step(0.0)
    book.add("on", 1000, 100)
    book.add("off", 99000, 990)
    with caplog.at_level(logging.ERROR, "rampup.guard"):
        guard.step(60.0)
    assert not source.snapshot.flags["f"].killed
    assert "evaluating 'f' failed" in caplog.text
    guard.step(70.0)
    assert source.snapshot.flags["f"].killed
    assert Flaky.calls == 2


def test_the_p99_waits_for_enough_control_requests() -> None:
    """The tail test freezes the control's p99 only once the control has 200 timed requests."""
    _, book, guard, _ = setup(guard={"latency": "p99"})
    book.add("on", 1, 0)
    book.add("off", 100, 0)
    guard.step(70.0)
    assert guard.states["f"].p99 is None
    book.add("off", 100, 0)
    guard.step(80.0)
    state = guard.states["f"]
    assert state.p99 == 0.5
    assert state.tail_timed == {"on": 1, "off": 200}


def test_a_held_stage_does_not_advance_and_says_so() -> None:
    """held = true: evidence that would advance leaves the stage where it is; the status is
    "hold: held by an operator" and waits for an operator's release; released, it advances."""
    source, book, guard, seen = setup(held=True)
    book.add("on", 8000, 40)
    book.add("off", 792000, 4000)
    (status,) = guard.step(HOUR)
    assert (status.verdict, status.reason) == ("hold", "held by an operator")
    assert status.waiting_for == ("an operator's release (held by an operator)",)
    assert source.snapshot.flags["f"].rules[0].rollout.stage == 0  # type: ignore[union-attr]
    assert not [s for s in seen if s.verdict == "advance"]
    source.snapshot = flags()  # released (same stage): the next look advances
    (status,) = guard.step(HOUR + 10)
    assert status.verdict == "advance"
    assert source.snapshot.flags["f"].rules[0].rollout.stage == 1  # type: ignore[union-attr]


def test_a_held_stage_still_halts_on_harm() -> None:
    """Holding a stage never hides harm: errors at 5x the control's kill the held flag."""
    source, book, guard, seen = setup(held=True)
    now = 0.0
    for _ in range(60):
        now += 10
        book.add("on", 20, 2)
        book.add("off", 2000, 40)
        guard.step(now)
    assert source.snapshot.flags["f"].killed
    assert [s.verdict for s in seen if s.verdict == "halt"] == ["halt"]
