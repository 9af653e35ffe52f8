"""The guard: advance a healthy rollout, halt a bad one, off the request path.

Every few seconds a daemon thread (or a caller of :meth:`Guard.step`) reads each guarded flag's
per-variant sums through an :class:`OutcomeReader`, runs the tests of ``guard_stats`` and
decides **halt** (kill the flag), **advance** (the next stage) or **hold**, acting through an
:class:`Actions` object. A rollout an operator holds (``held = true``) never advances, but
still halts on evidence of harm. Every decision is logged, passed to the user's callback
(which cannot break anything) and, when ``opentelemetry-api`` is importable, emitted as a
span event.

The guard keeps one :class:`StageState` per flag: plain, serialisable data (``to_dict`` /
``from_dict``), so a shared store can persist it and a restart resumes. What the guard can do
depends on where flags come from: :class:`SnapshotActions` swaps the snapshot of a writable
in-process source (a single-process server); with a file shared by several processes the guard
can only watch and alert (``actions=None``), because processes cannot agree on a stage without a
shared store.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from . import guard_stats as st
from .engine import Snapshot
from .guard_book import BookReader
from .guard_types import (  # re-exported: users import them from here
    Actions,
    OutcomeReader,
    StageState,
    StaticReader,
    Status,
    VariantCounts,
)
from .model import Flag, Rollout
from .rollout import find_rollout, with_stage

__all__ = [
    "Actions",
    "Guard",
    "OutcomeReader",
    "SnapshotActions",
    "StageState",
    "StaticReader",
    "Status",
    "VariantCounts",
    "start",
]

log = logging.getLogger("rampup.guard")

#: the advance e-value threshold (evidence that the error-rate ratio is below 2)
ADVANCE_AT = 20.0
#: hold when the sample-ratio test's p-value is below this
SRM_P = 0.001
#: the hold's reason while an operator holds the stage (``held = true`` in its rollout)
HELD = "held by an operator"
#: latency tests skip each stage's first minute (caches, JIT, connection pools warming up)
LATENCY_WARMUP = 60.0
#: latency needs this many control requests timed before the p99 is frozen
MIN_P99_SAMPLES = 200


class SnapshotActions:
    """Act in this process only: swap the source's snapshot for one with the flag killed or
    moved to its next stage. For a single-process server whose source has a writable
    ``snapshot`` (``StaticSource``, or a ``FileSource`` that then only watches the file:
    the next change on disk replaces the guard's edit, so prefer a store in production)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._lock = threading.Lock()

    def kill(self, flag: str, reason: str) -> None:
        """Swap in a snapshot where ``flag`` is killed."""
        self._swap(flag, lambda f: dataclasses.replace(f, killed=True))

    def set_stage(self, flag: str, index: int, state: StageState) -> None:
        """Swap in a snapshot where ``flag``'s rollout is at stage ``index``."""
        self._swap(flag, lambda f: with_stage(f, index))

    def _swap(self, key: str, change: Callable[[Flag], Flag]) -> None:
        with self._lock:
            snap: Snapshot = self.source.snapshot
            flags = dict(snap.flags)
            flags[key] = change(flags[key])
            self.source.snapshot = Snapshot.build(
                flags, snap.segments, snap.origin, snap, environment=snap.environment
            )


Callback = Callable[[Status], object]


class Guard:
    """Evaluate every guarded rollout of ``source`` every ``interval`` seconds and act.

    ``reader`` gives the per-variant sums, ``actions`` acts on a verdict (None: watch and
    alert only), ``on_decision`` is called with the :class:`Status` of each halt and advance
    and when a sample-ratio mismatch starts a hold; its exceptions are logged and ignored. ``clock``
    (epoch seconds) is injectable for tests and simulations.
    """

    def __init__(
        self,
        source: Any,
        reader: OutcomeReader,
        actions: Actions | None = None,
        *,
        interval: float = 5.0,
        on_decision: Callback | None = None,
        clock: Callable[[], float] = time.time,
        states: Mapping[str, StageState] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.source = source
        self.reader = reader
        self.actions = actions
        self.interval = interval
        self.on_decision = on_decision
        self.clock = clock
        self.tracer_provider = tracer_provider
        #: flag -> its stage state (restore one from a store by passing ``states``)
        self.states: dict[str, StageState] = dict(states or {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one step at a time; never taken on the request path

    # -- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """Run :meth:`step` every ``interval`` seconds in a daemon thread (restarted after a
        fork in the child, where threads do not survive)."""
        self._stop = threading.Event()
        t = threading.Thread(
            target=_run, args=(weakref.ref(self), self._stop, self.interval), daemon=True
        )
        t.name = "rampup-guard"
        self._thread = t
        t.start()
        _running.add(self)

    def stop(self) -> None:
        """Stop the thread (a step under way finishes)."""
        self._stop.set()
        _running.discard(self)

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- looking ------------------------------------------------------------------------------
    def status(self, now: float | None = None) -> list[Status]:
        """Each guarded flag's evidence and verdict now, without acting or changing state."""
        now = self.clock() if now is None else now
        out = []
        for flag, rollout in _rollouts(self.source.snapshot):
            state = self.states.get(flag.key)
            if state is None or state.index != rollout.stage:
                state = self._fresh(flag.key, rollout.stage, now, state)
            out.append(self._assess(flag, rollout, dataclasses.replace(state), now))
        return out

    def step(self, now: float | None = None) -> list[Status]:
        """Look once at every guarded flag and act on what is found; returns the statuses."""
        with self._lock:
            now = self.clock() if now is None else now
            out = []
            for flag, rollout in _rollouts(self.source.snapshot):
                try:
                    out.append(self._step_flag(flag, rollout, now))
                except Exception:  # one bad flag or reader must not stop the others
                    log.exception("rampup: guard: evaluating %r failed", flag.key)
            return out

    # -- one flag -----------------------------------------------------------------------------
    def _fresh(self, key: str, index: int, now: float, previous: StageState | None) -> StageState:
        """A state for a stage entered now: earlier stages' evidence carried over."""
        base = {v: c.to_dict() for v, c in self.reader.counts(key).items()}
        state = StageState(key, index, now, base)
        if previous is not None:
            state.carried = list(previous.carried)
            state.carried_tail = list(previous.carried_tail)
            state.carried_mean = previous.carried_mean
        return state

    def _step_flag(self, flag: Flag, rollout: Rollout, now: float) -> Status:
        key = flag.key
        state = self.states.get(key)
        if state is None or state.index != rollout.stage:
            # First look, or someone else (a person, the store) moved the stage: start it now.
            state = self._fresh(key, rollout.stage, now, state)
            self.states[key] = state
        status = self._assess(flag, rollout, state, now)
        before = (state.verdict, _gist(state.reason))
        if status.verdict == "halt":
            if state.verdict != "halt":  # act and tell once; a failed kill is retried
                if self.actions is not None:
                    self.actions.kill(key, status.reason)
                state.verdict, state.reason = "halt", status.reason
                self._tell(status, logging.WARNING)
        elif status.verdict == "advance":
            if self.actions is not None:
                new = self._fresh(key, rollout.stage + 1, now, state)
                _carry(new, status, state)  # this stage's evidence joins the carried sums
                new.verdict, new.reason = "advance", status.reason
                self.actions.set_stage(key, rollout.stage + 1, new)
                self.states[key] = new
                self._tell(status, logging.INFO)
            elif state.verdict != "advance":  # watching only: recommend it once
                state.verdict, state.reason = "advance", status.reason
                self._tell(status, logging.INFO)
        elif status.verdict == "killed" and state.verdict in ("halt", "killed"):
            state.verdict = "killed"  # by the guard: keep the halt's reason
        elif state.verdict != "halt" or status.verdict == "killed":
            state.verdict, state.reason = status.verdict, "; ".join(status.waiting_for)
            gist = _gist(state.reason)
            if (state.verdict, gist) != before:
                # a sample-ratio mismatch is worth a message (crashes may hide errors); other
                # holds are the normal course of a stage, logged for debugging only
                srm = "sample ratio" in gist and "sample ratio" not in before[1]
                self._tell(status, logging.WARNING if srm else logging.DEBUG, notify=srm)
        return status

    def _assess(self, flag: Flag, rollout: Rollout, state: StageState, now: float) -> Status:
        key, t, c = flag.key, rollout.treatment, rollout.control
        cur = self.reader.counts(key)
        counts = {v: _since(cur, state.baseline, v) for v in (t, c)}
        ct, cc = counts[t], counts[c]
        nt, nc, xt, xc = ct.requests, cc.requests, ct.error_subjects, cc.error_subjects
        in_stage = now - state.started_at
        log_e, _ = st.halt_e(xt, xc, nt, nc, state.carried)
        log_adv = st.advance_e(xt, xc, nt, nc)
        srm = st.srm_p_value(nt, nc, rollout.share / 100.0)
        log_mean, log_tail, d, slow, timed = self._latency(key, rollout, state, cur, now)
        log_halt = math.log(1.0 / rollout.alpha)
        log_halt_lat = math.log(2.0 / rollout.alpha)  # alpha/2 each: 0.005 at the default
        waiting: list[str] = []
        verdict, reason = "hold", ""
        if flag.killed:
            verdict, waiting = "killed", ["nothing: the flag is killed"]
        elif rollout.errors and log_e >= log_halt:
            verdict = "halt"
            reason = _halt_reason((t, c), "errors", (nt, nc), (xt, xc), log_e)
        elif log_mean >= log_halt_lat and d > 0:
            verdict = "halt"
            reason = (
                f"guard: {t} latency {math.expm1(d):.0%} slower than {c} (geometric mean), "
                f"E={_num(log_mean)} after {_count(timed[0])} requests"
            )
        elif log_tail >= log_halt_lat:
            verdict = "halt"
            what = f"requests slower than {state.p99:.3g} s"
            reason = _halt_reason((t, c), what, timed, slow, log_tail)
        last = rollout.stage >= len(rollout.stages) - 1
        if verdict == "hold" and last:
            verdict, waiting = "done", ["nothing: the last stage is reached"]
        elif verdict == "hold":
            if rollout.held:  # an operator's pause: it blocks advancing, never a halt above
                waiting.append(f"an operator's release ({HELD})")
            if srm < SRM_P:
                observed = nt / max(nt + nc, 1) * 100
                waiting.append(
                    f"sample ratio: {observed:.3g} % of requests to {t}, configured "
                    f"{rollout.share:g} % (p={srm:.1e}); crashes before counting may hide errors"
                )
            if in_stage < rollout.hold:
                waiting.append(f"the hold ({_dur(rollout.hold - in_stage)} left)")
            if nt < rollout.min_requests:
                waiting.append(f"{_count(rollout.min_requests)} {t} requests ({_count(nt)} so far)")
            if rollout.errors and log_adv < math.log(ADVANCE_AT):
                waiting.append(
                    f"evidence that {t} errors are under 2x {c}: E_adv {_num(log_adv)} of "
                    f"{ADVANCE_AT:g} ({xt} vs {xc} error subjects)"
                )
            nb = rollout.not_before
            nxt = rollout.stage + 1
            if nxt < len(nb) and now < nb[nxt].timestamp():
                waiting.append(f"not before {nb[nxt].isoformat()}")
            if not waiting:
                verdict = "advance"
                reason = (
                    f"guard: {t} {rollout.share:g} % -> {rollout.stages[nxt]:g} %, "
                    f"E_adv={_num(log_adv)} after {_count(nt)} requests "
                    f"({xt} vs {xc} error subjects)"
                )
        if verdict == "hold" and rollout.held:
            reason = HELD
        return Status(
            key,
            rollout.stage,
            rollout.stages,
            rollout.share,
            t,
            c,
            in_stage,
            counts,
            _exp(log_e),
            1.0 / rollout.alpha,
            _exp(log_adv),
            srm,
            _exp(log_mean),
            _exp(log_tail),
            d,
            slow,
            timed,
            verdict,
            reason,
            tuple(waiting),
        )

    def _latency(
        self,
        key: str,
        rollout: Rollout,
        state: StageState,
        cur: Mapping[str, VariantCounts],
        now: float,
    ) -> tuple[float, float, float, tuple[int, int], tuple[int, int]]:
        """(log E mean, log E tail, d, slow, timed): zeros until the first minute is over.

        When the first minute ends the latency sums are read as the mean test's baseline. The
        tail test's threshold is the control's p99 so far, frozen at the first look after that
        minute where the control has at least MIN_P99_SAMPLES timed requests; its counts start
        there.
        """
        none = (0, 0)
        if not rollout.latency or now - state.started_at < LATENCY_WARMUP:
            return 0.0, 0.0, 0.0, none, none
        t, c = rollout.treatment, rollout.control
        if state.lat_baseline is None:
            state.lat_baseline = {v: x.to_dict() for v, x in cur.items()}
        log_mean, d = 0.0, 0.0
        if rollout.latency in ("mean", "both"):
            base = state.lat_baseline
            lt, lc = (_since(cur, base, v) for v in (t, c))
            log_mean, d = st.msprt_log(
                (lt.lat_n, lt.lat_sum, lt.lat_sumsq), (lc.lat_n, lc.lat_sum, lc.lat_sumsq)
            )
            log_mean += state.carried_mean
        if rollout.latency not in ("p99", "both"):
            return log_mean, 0.0, d, none, none
        if state.p99 is None:
            if cur.get(c, VariantCounts()).lat_n >= MIN_P99_SAMPLES:
                state.p99 = self.reader.quantile(key, c, 0.99)
            if state.p99 is not None:
                state.slow_baseline = {
                    v: self.reader.slower_than(key, v, state.p99) for v in (t, c)
                }
                state.tail_timed = {v: cur.get(v, VariantCounts()).lat_n for v in (t, c)}
            return log_mean, 0.0, d, none, none
        slow = tuple(
            self.reader.slower_than(key, v, state.p99) - state.slow_baseline.get(v, 0)
            for v in (t, c)
        )
        timed = tuple(
            cur.get(v, VariantCounts()).lat_n - state.tail_timed.get(v, 0) for v in (t, c)
        )
        log_tail, _ = st.halt_e(slow[0], slow[1], timed[0], timed[1], state.carried_tail)
        return log_mean, log_tail, d, (slow[0], slow[1]), (timed[0], timed[1])

    def _tell(self, status: Status, level: int, *, notify: bool = True) -> None:
        """Log the decision, emit it to OpenTelemetry, pass it to the callback: never raise."""
        what = status.reason or "; ".join(status.waiting_for)
        log.log(
            level,
            "rampup: guard: %s %s at stage %d (%g %%): %s",
            status.verdict,
            status.flag,
            status.stage,
            status.share,
            what,
        )
        if status.verdict in ("halt", "advance"):
            _emit_otel(status, self.tracer_provider)
        if notify and self.on_decision is not None:
            try:
                self.on_decision(status)
            except Exception:
                log.exception("rampup: guard: the on_decision callback failed (ignored)")


def start(
    source: Any,
    book: Any = None,
    *,
    act: bool = True,
    interval: float = 5.0,
    on_decision: Callback | None = None,
    tracer_provider: Any = None,
) -> Guard:
    """Run the guard of a single-process app in one line, and return it (``guard.stop()``).

    ``source``: the app's flag source, or the rampup middleware serving it (its
    ``runtime.source``). It reads ``book`` (default: the process's outcome book, fed by every
    adapter's one-line setup) and, with ``act=True``, kills or advances in this process only
    (:class:`SnapshotActions`). With several processes sharing a flag file pass ``act=False``
    (watch and alert), or use the Redis store's fleet guard (``rampup.guard_fleet``).
    """
    runtime = getattr(source, "runtime", None)
    if runtime is not None and hasattr(runtime, "source"):
        source = runtime.source
    guard = Guard(
        source,
        BookReader(book),
        SnapshotActions(source) if act else None,
        interval=interval,
        on_decision=on_decision,
        tracer_provider=tracer_provider,
    )
    guard.start()
    return guard


# -- helpers ----------------------------------------------------------------------------------
def _carry(new: StageState, status: Status, old: StageState) -> None:
    """Add the finished stage's own evidence to ``new``'s carried sums."""
    ct, cc = status.counts[status.treatment], status.counts[status.control]
    stage = st.log_lrs(ct.error_subjects, cc.error_subjects, ct.requests, cc.requests)
    new.carried = [a + b for a, b in zip(old.carried, stage, strict=True)]
    tail = st.log_lrs(*status.slow, *status.timed)
    new.carried_tail = [a + b for a, b in zip(old.carried_tail, tail, strict=True)]
    # The mean test's running value (earlier stages included) is an e-value; capped at 1 it
    # still is, and the cap keeps a faster stage from pre-paying a later halt.
    new.carried_mean = min(math.log(max(status.e_latency_mean, 1e-300)), 0.0)


def _since(
    cur: Mapping[str, VariantCounts], base: Mapping[str, Mapping[str, float]], variant: str
) -> VariantCounts:
    """The variant's sums since ``base`` was read."""
    return cur.get(variant, VariantCounts()).minus(VariantCounts.from_dict(base.get(variant, {})))


def _rollouts(snapshot: Snapshot) -> list[tuple[Flag, Rollout]]:
    out = []
    for flag in snapshot.flags.values():
        found = find_rollout(flag)
        if found is not None:
            out.append((flag, found[1]))
    return out


def _gist(reason: str) -> tuple[str, ...]:
    """What a hold waits for, without the numbers that change at every look."""
    return tuple(w.split(":")[0].split(" (")[0] for w in reason.split("; ") if w)


def _halt_reason(
    tc: tuple[str, str], what: str, n: tuple[int, int], x: tuple[int, int], log_e: float
) -> str:
    """``guard: on errors 2.3x off, E=140 after 2,700 requests``."""
    (t, c), (nt, nc), (xt, xc) = tc, n, x
    ratio = (xt / nt) / (xc / nc) if nt and nc and xc else math.inf
    shown = f"{ratio:.1f}x" if math.isfinite(ratio) else f"{xt} vs 0"
    return f"guard: {t} {what} {shown} {c}, E={_num(log_e)} after {_count(nt)} requests"


def _exp(log_value: float) -> float:
    return math.exp(min(log_value, 700.0))


def _num(log_value: float) -> str:
    v = _exp(log_value)
    return f"{v:.2g}" if v < 10 or v >= 1e6 else f"{v:,.0f}"


def _count(n: float) -> str:
    return f"{int(n):,}"


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def _emit_otel(status: Status, provider: Any) -> None:
    """A span with a ``rampup.guard.decision`` event, when opentelemetry-api is importable."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    try:
        tracer = trace.get_tracer("rampup.guard", tracer_provider=provider)
        with tracer.start_as_current_span("rampup.guard") as span:
            span.add_event(
                "rampup.guard.decision",
                {
                    "feature_flag.key": status.flag,
                    "rampup.guard.verdict": status.verdict,
                    "rampup.guard.stage": status.stage,
                    "rampup.guard.share": status.share,
                    "rampup.guard.e": status.e,
                    "rampup.guard.e_adv": status.e_adv,
                    "rampup.guard.reason": status.reason,
                },
            )
    except Exception:
        log.exception("rampup: guard: emitting the OpenTelemetry event failed (ignored)")


def _run(ref: weakref.ref[Guard], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        guard = ref()
        if guard is None:
            return
        try:
            guard.step()
        except Exception:  # pragma: no cover - step already catches per flag
            log.exception("rampup: guard step failed")
        del guard


_running: weakref.WeakSet[Guard] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for guard in list(_running):
        guard._lock = threading.Lock()
        guard.start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)
