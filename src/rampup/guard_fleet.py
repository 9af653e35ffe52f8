"""The guard across a fleet, through the Redis store: every process flushes its outcome book
to Redis, one elected process evaluates the fleet's sums and acts through the store.

Keys, under the namespace's hash tag (one Redis Cluster slot, like the store's)::

    {rampup:NS}:outcomes:FLAG  hash: "STAT:VARIANT" -> the fleet's sum (requests, errors,
                               error_subjects, log_sum, log_sq_sum, b0..b160 histogram buckets)
    {rampup:NS}:guard          hash: flag -> its StageState (JSON): index, start, carried
                               log-likelihoods, latency baselines, verdict, reason
    {rampup:NS}:guard:lock     string: the evaluator's "host:pid:token", with an expiry

* **Flush.** Each process adds its book's growth since its last flush every 1-5 s (jittered,
  so a fleet does not write in lockstep) in one pipelined MULTI/EXEC: a flush lands whole or
  not at all, and a failed one is retried with the next (the deltas accumulate).
* **Election.** ``SET lock token NX PX ttl``; the holder renews it before each look (a Lua
  compare-and-expire) and deletes it on stop (compare-and-delete): one evaluator at a time,
  and another takes over within ``lock_ttl`` when it dies.
* **State.** A new evaluator loads every flag's StageState from Redis, so a restart (or a new
  leader) resumes the stage, its start and the carried evidence; it writes them back after
  each look.
* **Actions.** Halt: the store's ``kill`` with the guard's reason. Advance: the rollout's
  ``stage`` written into the document by a compare-and-set push (``Store.update``); a stage
  someone else moved meanwhile is not overwritten.

Fork safety, as ``redis_source``: attached to a RedisSource, the thread starts in each process
at its first snapshot read (a ``--preload`` master that serves nothing runs none); an at-fork
hook resets the child (new Redis client, not the leader, the inherited book not re-flushed).
This is the only guard module that imports redis-py (``rampup[redis]``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from .config import load
from .engine import Snapshot
from .errors import StoreError
from .guard import Callback, Guard, StageState, Status, VariantCounts
from .guard_book import slow_count
from .outcomes import BUCKETS, OutcomeBook, OutcomeSnapshot, VariantStats
from .outcomes import book as process_book
from .store import Store

__all__ = [
    "FleetActions",
    "FleetGuard",
    "FleetReader",
    "fleet_status",
    "flush",
    "holder",
    "load_states",
    "start",
]

log = logging.getLogger("rampup.guard")

#: outcome hashes expire this long after the last flush (a flag no longer served)
RETENTION_MS = 30 * 86400 * 1000
_STATS = ("requests", "errors", "error_subjects")
_FLOATS = ("log_sum", "log_sq_sum")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _tag(store: Store) -> str:
    return f"{{rampup:{store.namespace}}}"


def outcomes_key(store: Store, flag: str) -> str:
    """The hash of ``flag``'s fleet sums."""
    return f"{_tag(store)}:outcomes:{flag}"


def state_key(store: Store) -> str:
    """The hash of the guard's stage states."""
    return f"{_tag(store)}:guard"


def lock_key(store: Store) -> str:
    """The evaluator's lock."""
    return f"{_tag(store)}:guard:lock"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- flushing -----------------------------------------------------------------------------------
def flush(store: Store, book: OutcomeBook, since: OutcomeSnapshot) -> OutcomeSnapshot:
    """Add ``book``'s growth since ``since`` to the fleet sums in one pipelined MULTI/EXEC;
    returns the snapshot to pass next time. Raises the client's error (nothing was added)."""
    now = book.snapshot()
    pipe = store.client.pipeline(transaction=True)
    writes = 0
    for flag, variant, s in now.since(since):
        if not s.requests and not s.errors:
            continue
        key = outcomes_key(store, flag)
        for stat in _STATS:
            if getattr(s, stat):
                pipe.hincrby(key, f"{stat}:{variant}", getattr(s, stat))
        for stat in _FLOATS:
            pipe.hincrbyfloat(key, f"{stat}:{variant}", repr(getattr(s, stat)))
        for i, n in enumerate(s.buckets):
            if n:
                pipe.hincrby(key, f"b{i}:{variant}", n)
        pipe.pexpire(key, RETENTION_MS)
        writes += 1
    if writes:
        pipe.execute()
    return now


# -- reading ------------------------------------------------------------------------------------
def _parse(raw: Mapping[Any, Any]) -> dict[str, tuple[VariantCounts, list[int]]]:
    """One flag's outcome hash as ``{variant: (counts, histogram buckets)}``."""
    out: dict[str, tuple[VariantCounts, list[int]]] = {}
    for k, v in raw.items():
        stat, _, variant = _text(k).partition(":")
        counts, buckets = out.setdefault(variant, (VariantCounts(), [0] * BUCKETS))
        value = _text(v)
        if stat in _STATS:
            setattr(counts, stat, int(value))
        elif stat == "log_sum":
            counts.lat_sum = float(value)
        elif stat == "log_sq_sum":
            counts.lat_sumsq = float(value)
        elif stat.startswith("b") and stat[1:].isdigit() and int(stat[1:]) < BUCKETS:
            buckets[int(stat[1:])] = int(value)
    for counts, _ in out.values():
        counts.lat_n = counts.requests  # every request the book counts is timed
    return out


class FleetReader:
    """An :class:`~rampup.guard.OutcomeReader` over the fleet's sums in Redis."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _read(self, flag: str) -> dict[str, tuple[VariantCounts, list[int]]]:
        return _parse(self.store.client.hgetall(outcomes_key(self.store, flag)))

    def snapshot(self, flags: Iterable[str]) -> OutcomeSnapshot:
        """The fleet sums of ``flags`` as an :class:`~rampup.outcomes.OutcomeSnapshot` (one
        pipelined round trip; a flag with nothing flushed is absent). Raises the client's
        error when Redis does not answer."""
        keys = list(flags)
        if not keys:
            return OutcomeSnapshot({}, time.time())
        pipe = self.store.client.pipeline(transaction=False)
        for flag in keys:
            pipe.hgetall(outcomes_key(self.store, flag))
        out: dict[str, dict[str, VariantStats]] = {}
        for flag, raw in zip(keys, pipe.execute(), strict=True):
            for variant, (c, buckets) in _parse(raw).items():
                out.setdefault(flag, {})[variant] = VariantStats(
                    requests=c.requests,
                    errors=c.errors,
                    error_subjects=c.error_subjects,
                    log_sum=c.lat_sum,
                    log_sq_sum=c.lat_sumsq,
                    buckets=tuple(buckets) if any(buckets) else (),
                )
        return OutcomeSnapshot(out, time.time())

    def counts(self, flag: str) -> Mapping[str, VariantCounts]:
        """Each variant's fleet sums."""
        return {v: c for v, (c, _) in self._read(flag).items()}

    def quantile(self, flag: str, variant: str, q: float) -> float | None:
        """The variant's fleet latency quantile (from the summed histogram)."""
        got = self._read(flag).get(variant)
        if got is None:
            return None
        return VariantStats(buckets=tuple(got[1])).quantile(q)

    def slower_than(self, flag: str, variant: str, seconds: float) -> int:
        """The variant's fleet requests in histogram buckets above ``seconds``."""
        got = self._read(flag).get(variant)
        return 0 if got is None else slow_count(got[1], seconds)


def load_states(store: Store) -> dict[str, StageState]:
    """Every flag's stage state stored in Redis (unreadable entries are skipped, logged)."""
    out = {}
    for k, v in store.client.hgetall(state_key(store)).items():
        try:
            state = StageState.from_dict(json.loads(v))
        except (ValueError, TypeError) as exc:
            log.error("rampup: guard: stored state of %r is unreadable, ignored: %s", k, exc)
            continue
        out[state.flag] = state
    return out


def save_states(store: Store, states: Mapping[str, StageState]) -> None:
    """Write the stage states to Redis (one HSET)."""
    if states:
        store.client.hset(
            state_key(store), mapping={k: json.dumps(s.to_dict()) for k, s in states.items()}
        )


def holder(store: Store) -> str | None:
    """Who evaluates now (``host:pid:token``), or None."""
    value = store.client.get(lock_key(store))
    return None if value is None else _text(value)


class _StoreView:
    """The live document as a snapshot, re-read when its sha changes: the evaluator looks at
    exactly what the store holds, including its own last write."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sha = ""
        self.snapshot = Snapshot.build({}, {}, f"<redis {store.namespace}: nothing loaded>")

    def refresh(self) -> None:
        head = self.store.head()
        if head is None or head[1] == self.sha:
            return
        doc = self.store.get()
        if doc is not None:
            self.snapshot = load(doc.data)
            self.sha = doc.sha


def fleet_status(store: Store, now: float | None = None) -> list[Status]:
    """Each guarded flag's fleet status (what ``rampup guard status --redis`` prints): the
    live document, the stored stage states and the fleet's sums. Only looks."""
    view = _StoreView(store)
    view.refresh()
    guard = Guard(view, FleetReader(store), None, states=load_states(store))
    return guard.status(now)


# -- acting -------------------------------------------------------------------------------------
class FleetActions:
    """:class:`~rampup.guard.Actions` through the store: every process sees the change."""

    def __init__(self, store: Store, by: str = "rampup guard") -> None:
        self.store = store
        self.by = by

    def kill(self, flag: str, reason: str) -> None:
        """The store's kill (compare-and-set, retried), recorded with the guard's reason."""
        self.store.kill(flag, reason=reason, by=self.by)

    def set_stage(self, flag: str, index: int, state: StageState) -> None:
        """Write the rollout's ``stage`` into the document (a compare-and-set push), then the
        new stage state; refuses if someone else moved the stage meanwhile."""

        def change(data: dict[str, Any]) -> dict[str, Any]:
            for rule in (data.get("flags") or {}).get(flag, {}).get("rules") or []:
                rollout = rule.get("rollout") if isinstance(rule, dict) else None
                if isinstance(rollout, dict):
                    current = rollout.get("stage", 0)
                    if current not in (index - 1, index):
                        raise StoreError(
                            f"{flag}: the store's rollout is at stage {current}, not "
                            f"{index - 1}: someone moved it; the guard will look again"
                        )
                    if rollout.get("held") is True and current != index:
                        raise StoreError(
                            f"{flag}: an operator held the rollout meanwhile; not advancing"
                        )
                    rollout["stage"] = index
                    return data
            raise StoreError(f"{flag}: no rollout rule in namespace {self.store.namespace!r}")

        self.store.update(change, reason=state.reason or f"guard: {flag} stage {index}", by=self.by)
        save_states(self.store, {flag: state})


# -- the fleet guard ----------------------------------------------------------------------------
class FleetGuard:
    """Flush this process's book to Redis and, when elected, evaluate and act for the fleet.

    ``store``: a :class:`~rampup.store.Store` or a Redis URL (``namespace`` as the store's).
    ``flush_every``: (min, max) seconds between flushes, drawn at random each time.
    ``lock_ttl``: the lock's expiry (default: three intervals, at least 2 s).
    ``evaluate=False``: flush only (this process never evaluates).
    """

    def __init__(
        self,
        store: Store | str,
        namespace: str | None = None,
        *,
        book: OutcomeBook | None = None,
        interval: float = 5.0,
        flush_every: tuple[float, float] = (1.0, 5.0),
        lock_ttl: float | None = None,
        evaluate: bool = True,
        on_decision: Callback | None = None,
        clock: Callable[[], float] = time.time,
        tracer_provider: Any = None,
    ) -> None:
        if isinstance(store, str):
            store = Store(store, namespace or "default")
        self.store = store
        self.book = book if book is not None else process_book
        self.interval = interval
        self.flush_every = flush_every
        self.lock_ttl = lock_ttl if lock_ttl is not None else max(3 * interval, 2.0)
        self.evaluate = evaluate
        self.leader = False
        self._opts = {
            "on_decision": on_decision,
            "clock": clock,
            "tracer_provider": tracer_provider,
        }
        self._attached = False
        self._reset(None)
        _guards.add(self)

    def _reset(self, store: Store | None) -> None:
        """This process's own state (after a fork: a new client, not the leader)."""
        if store is not None:
            self.store = store
        self._renew = self.store.client.register_script(_RENEW)
        self._release = self.store.client.register_script(_RELEASE)
        self.view = _StoreView(self.store)
        self.guard = Guard(
            self.view, FleetReader(self.store), FleetActions(self.store, self._by()), **self._opts
        )
        self.leader = False
        self._token = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(48):012x}"
        # counts from here on: a forked child's inherited counts are its parent's to flush
        self._last = self.book.snapshot()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._mutex = threading.Lock()

    @staticmethod
    def _by() -> str:
        return f"rampup guard ({socket.gethostname()}:{os.getpid()})"

    # -- running ------------------------------------------------------------------------------
    def start(self) -> FleetGuard:
        """Start this process's thread now (and once in each forked child, after the fork)."""
        with self._mutex:
            if self._pid == os.getpid():
                return self
            self._pid = os.getpid()
            t = threading.Thread(target=_run, args=(weakref.ref(self), self._stop), daemon=True)
            t.name = f"rampup-guard-fleet:{self.store.namespace}"
            self._thread = t
            t.start()
        return self

    def attach(self, source: Any) -> FleetGuard:
        """Start in each process when ``source`` (a RedisSource) starts serving there: at its
        first snapshot read, so a pre-fork master that serves nothing runs no thread."""
        self._attached = True
        source.on_serving(self.start)
        return self

    def stop(self) -> None:
        """Stop the thread, flush what is left and give up the lock (if held)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=10)
        try:
            self.flush_now()
            if self.leader:
                self._release(keys=[lock_key(self.store)], args=[self._token])
        except redis.exceptions.RedisError as exc:
            log.warning("rampup: guard: final flush or lock release failed: %s", exc)
        self.leader = False
        _guards.discard(self)

    @property
    def running(self) -> bool:
        """True while this process's thread is alive."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- one round ----------------------------------------------------------------------------
    def flush_now(self) -> None:
        """Add this process's book growth since the last flush to the fleet sums."""
        self._last = flush(self.store, self.book, self._last)

    def elect(self) -> bool:
        """Renew the lock if held, else try to take it; True while this process evaluates."""
        key, ttl = lock_key(self.store), int(self.lock_ttl * 1000)
        if self.leader:
            if self._renew(keys=[key], args=[self._token, ttl]):
                return True
            self.leader = False
            log.warning("rampup: guard: lost the evaluator lock; another process evaluates")
        if self.store.client.set(key, self._token, nx=True, px=ttl):
            self.leader = True
            self.guard.states = load_states(self.store)  # resume where the last one stopped
            log.info("rampup: guard: this process (%s) evaluates the fleet", self._token)
        return self.leader

    def evaluate_now(self) -> list[Status] | None:
        """If elected: look at every guarded flag, act, store the states; else None."""
        if not self.elect():
            return None
        self.view.refresh()
        statuses = self.guard.step()
        save_states(self.store, self.guard.states)
        return statuses

    def _round(self, what: Callable[[], object]) -> None:
        try:
            what()
        except Exception as exc:  # Redis down, a conflict: logged once, retried next round
            if not self._failing:
                log.warning("rampup: guard: %s failed (retried): %s", what.__name__, exc)
            self._failing = True
        else:
            if self._failing:
                log.warning("rampup: guard: %s works again", what.__name__)
            self._failing = False


def _run(ref: weakref.ref[FleetGuard], stop: threading.Event) -> None:
    g = ref()
    if g is None:
        return
    now = time.monotonic()
    # the first flush after a jittered wait too: workers forked together do not flush together
    next_flush, next_eval = now + random.uniform(*g.flush_every), now
    del g
    while True:
        g = ref()
        if g is None:
            return
        now = time.monotonic()
        if now >= next_flush:
            g._round(g.flush_now)
            next_flush = now + random.uniform(*g.flush_every)  # spreads a fleet; not security
        if g.evaluate and now >= next_eval:
            g._round(g.evaluate_now)
            next_eval = now + g.interval
        wait = max(0.0, min(next_flush, next_eval if g.evaluate else next_flush) - now)
        del g
        if stop.wait(wait):
            return


def start(
    source: Any,
    namespace: str | None = None,
    **options: Any,
) -> FleetGuard:
    """The fleet guard in one line. ``source``: the app's RedisSource (or the middleware
    serving it: its ``runtime.source``), started in each process at its first snapshot read;
    or a Redis URL / Store, started now. ``options``: :class:`FleetGuard`'s."""
    runtime = getattr(source, "runtime", None)
    if runtime is not None and hasattr(runtime, "source"):
        source = runtime.source
    if hasattr(source, "on_serving"):
        guard = FleetGuard(source.store.fresh(), **options)
        return guard.attach(source)
    return FleetGuard(source, namespace, **options).start()


_guards: weakref.WeakSet[FleetGuard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for g in list(_guards):
        was_running = g._pid is not None and not g._stop.is_set()
        g._reset(g.store.fresh())
        if was_running and not g._attached:
            g.start()  # attached ones start at their source's first read in this process


def _stop_at_exit() -> None:
    """A worker exiting flushes what is left and hands the lock over at once (else the next
    evaluator waits for the lock to expire)."""
    for g in list(_guards):
        if g._pid == os.getpid() and not g._stop.is_set():
            g.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_at_exit)
