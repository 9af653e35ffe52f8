"""The fleet guard's parts against a real redis-server: books flushed and summed, the reader,
the evaluator lock, stage state that survives a restart, compare-and-set actions, and
``rampup guard status --redis``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from rampup.guard import StageState
from rampup.guard_book import BookReader
from rampup.guard_fleet import (
    FleetActions,
    FleetGuard,
    FleetReader,
    fleet_status,
    holder,
    load_states,
    lock_key,
    outcomes_key,
)
from rampup.outcomes import OutcomeBook, OutcomeRecorder
from rampup.store import Store
from rampup.wsgi import RampupMiddleware

FLAG = "new-checkout"


def document(stage: int = 0, **guard: Any) -> dict[str, Any]:
    roll = {"stages": [10, 50, 100], "stage": stage, "hold": 1, "guard": guard}
    return {"flags": {FLAG: {"rules": [{"rollout": roll}]}}}


def serve(book: OutcomeBook, data: dict[str, Any], users: range, fail_on: bool) -> None:
    """Requests through the WSGI middleware, feeding ``book``; ``on`` fails when asked."""
    import rampup

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        on = rampup.flags.enabled(FLAG)
        start_response("500 Oops" if on and fail_on else "200 OK", [])
        return [b""]

    app = RampupMiddleware(
        view, flags=data, user_header="X-User", listeners=[OutcomeRecorder(book)]
    )
    for user in users:
        b"".join(
            app(
                {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_USER": str(user)},
                lambda *a: None,
            )
        )


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    s = Store(redis_url, "shop")
    yield s
    s.close()


def test_two_books_flushed_sum_in_redis(store: Store) -> None:
    """Each process's flush adds only its growth since its last flush: the fleet reader reads
    the two books' sum, latency histogram included."""
    a, b = OutcomeBook(), OutcomeBook()
    ga = FleetGuard(store, book=a, evaluate=False)
    gb = FleetGuard(store.fresh(), book=b, evaluate=False)
    ga.flush_now()
    gb.flush_now()  # the starting points
    serve(a, document(), range(300), fail_on=True)
    ga.flush_now()
    serve(b, document(), range(300, 500), fail_on=False)
    gb.flush_now()
    ga.flush_now()  # nothing new: adds nothing
    serve(a, document(), range(500, 600), fail_on=True)
    ga.flush_now()
    merged = a.snapshot() + b.snapshot()
    fleet = FleetReader(store)
    counts = fleet.counts(FLAG)
    for variant, stats in merged.read(FLAG).items():
        c = counts[variant]
        assert (c.requests, c.errors, c.error_subjects, c.lat_n) == (
            stats.requests,
            stats.errors,
            stats.error_subjects,
            stats.requests,
        )
        assert c.lat_sum == pytest.approx(stats.log_sum)
        assert c.lat_sumsq == pytest.approx(stats.log_sq_sum)
        assert fleet.quantile(FLAG, variant, 0.99) == stats.quantile(0.99)
    assert counts["on"].errors > 0
    assert counts["off"].errors == 0
    # the book reader and the fleet reader agree on one book's tail
    solo = BookReader(a)
    p50 = solo.quantile(FLAG, "on", 0.5)
    assert p50 is not None
    assert solo.slower_than(FLAG, "on", p50 / 4) == a.read(FLAG)["on"].requests
    assert fleet.slower_than(FLAG, "on", 1e9) == 0
    assert fleet.quantile("unknown", "on", 0.5) is None
    assert store.client.pttl(outcomes_key(store, FLAG)) > 0


def test_one_evaluator_at_a_time_and_a_successor_resumes(store: Store) -> None:
    """Only the lock holder evaluates; it stores the stage state; when it stops (releasing the
    lock) another process takes over and resumes the same stage, start and evidence."""
    store.push(document(min_requests=10_000))
    book = OutcomeBook()
    first = FleetGuard(store, book=book, interval=0.5)
    second = FleetGuard(store.fresh(), book=OutcomeBook(), interval=0.5)
    assert first.evaluate_now() is not None
    assert second.evaluate_now() is None  # the lock is held
    assert holder(store) == first._token
    serve(book, document(), range(400), fail_on=False)
    first.flush_now()
    statuses = first.evaluate_now()
    assert statuses is not None
    assert statuses[0].counts["on"].requests > 0
    saved = load_states(store)[FLAG]
    first.stop()
    assert holder(store) is None
    assert second.evaluate_now() is not None
    resumed = second.guard.states[FLAG]
    assert (resumed.index, resumed.started_at, resumed.baseline) == (
        saved.index,
        saved.started_at,
        saved.baseline,
    )
    second.stop()


def test_a_lost_lock_stops_evaluating(store: Store) -> None:
    """An evaluator whose lock expired or was taken does not act until it wins it again."""
    store.push(document())
    g = FleetGuard(store, book=OutcomeBook())
    assert g.elect()
    store.client.set(lock_key(store), "someone-else")
    assert not g.elect()
    assert not g.leader
    store.client.delete(lock_key(store))
    assert g.elect()
    g.stop()


def test_a_bad_treatment_is_killed_through_the_store(store: Store) -> None:
    """The elected guard kills a failing treatment with the store's kill and its reason."""
    store.push(document())
    book = OutcomeBook()
    g = FleetGuard(store, book=book)
    g.flush_now()
    serve(book, document(), range(2000), fail_on=True)
    g.flush_now()
    g.evaluate_now()  # first look: the stage starts (baseline = these sums)
    serve(book, document(), range(2000, 4000), fail_on=True)
    g.flush_now()
    statuses = g.evaluate_now()
    assert statuses is not None
    assert statuses[0].verdict == "halt"
    live = store.get()
    assert live is not None
    assert live.data["flags"][FLAG]["killed"] is True
    assert live.reason.startswith("guard: on errors")
    assert load_states(store)[FLAG].verdict == "halt"
    g.stop()


def test_an_advance_is_a_compare_and_set_stage_write(store: Store) -> None:
    """Advancing writes the rollout's stage into the document and the new stage state; a stage
    someone else moved meanwhile is not overwritten."""
    store.push(document())
    actions = FleetActions(store)
    state = StageState(FLAG, 1, 123.0, reason="guard: on 10 % -> 50 %")
    actions.set_stage(FLAG, 1, state)
    live = store.get()
    assert live is not None
    assert live.data["flags"][FLAG]["rules"][0]["rollout"]["stage"] == 1
    assert live.reason == "guard: on 10 % -> 50 %"
    assert load_states(store)[FLAG].started_at == 123.0
    from rampup.errors import StoreError

    with pytest.raises(StoreError, match="someone moved it"):
        actions.set_stage(FLAG, 3, state)


def test_an_advance_is_refused_when_an_operator_held_the_stage_meanwhile(store: Store) -> None:
    """A rollout held in the store (after the guard looked) is not advanced by its write."""
    from rampup.errors import StoreError

    doc = document()
    doc["flags"][FLAG]["rules"][0]["rollout"]["held"] = True
    store.push(doc)
    with pytest.raises(StoreError, match="an operator held the rollout"):
        FleetActions(store).set_stage(FLAG, 1, StageState(FLAG, 1, 0.0))
    live = store.get()
    assert live is not None
    assert live.data["flags"][FLAG]["rules"][0]["rollout"]["stage"] == 0


def test_guard_status_reads_the_fleet(store: Store, redis_url: str) -> None:
    """`rampup guard status --redis URL --namespace NS` prints each rollout's stage, counts,
    E, E_adv, the verdict and who evaluates; --json carries the same."""
    store.push(document())
    book = OutcomeBook()
    g = FleetGuard(store, book=book)
    g.flush_now()
    g.evaluate_now()
    serve(book, document(), range(300), fail_on=False)
    g.flush_now()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rampup", "guard", "status", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "RAMPUP_REDIS_URL": ""},
        )

    out = cli("--redis", redis_url, "--namespace", "shop")
    assert out.returncode == 0, out.stderr
    assert f"evaluated by {g._token}" in out.stdout
    assert f"{FLAG}: stage 0 (on 10 %)" in out.stdout
    assert "E_adv" in out.stdout
    on = g.guard.status()[0].counts["on"].requests
    assert f"{on:>10,} requests" in out.stdout
    data = json.loads(cli("--redis", redis_url, "--namespace", "shop", "--json").stdout)
    assert data["evaluator"] == g._token
    assert data["flags"][0]["counts"]["on"]["requests"] == on
    assert data["flags"][0]["verdict"] == "hold"
    assert cli().returncode == 2
    assert cli("--redis", redis_url, "--counts", "x.json").returncode == 2
    g.stop()
    assert "no guard evaluates now" in cli("--redis", redis_url, "--namespace", "shop").stdout
    assert fleet_status(Store(redis_url, "empty")) == []


def test_started_with_a_url_it_flushes_and_evaluates_in_its_thread(
    store: Store, redis_url: str
) -> None:
    """``start(URL, NS)`` runs now: its thread takes the lock, stores the stage state and
    flushes the book; ``stop`` gives the lock up."""
    from rampup import guard_fleet

    from .helpers import wait_until

    store.push(document())
    book = OutcomeBook()
    g = guard_fleet.start(redis_url, "shop", book=book, interval=0.05, flush_every=(0.02, 0.05))
    try:
        assert g.running
        wait_until(lambda: holder(store) == g._token and FLAG in load_states(store))
        serve(book, document(), range(50), fail_on=False)
        wait_until(lambda: sum(c.requests for c in FleetReader(store).counts(FLAG).values()) == 50)
    finally:
        g.stop()
    assert not g.running
    assert holder(store) is None


def test_attached_to_a_source_it_starts_at_the_first_read(store: Store, redis_url: str) -> None:
    """On a RedisSource the thread waits for the process's first snapshot read (a pre-fork
    master that serves nothing runs none)."""
    from rampup import guard_fleet
    from rampup.redis_source import RedisSource

    store.push(document())
    source = RedisSource(redis_url, "shop", interval=0.1)
    g = guard_fleet.start(source, interval=0.05)
    try:
        assert not g.running
        source.snapshot  # noqa: B018 - the first read in this process
        assert g.running
        late = FleetGuard(store.fresh(), evaluate=False).attach(source)  # already serving
        assert late.running
        late.stop()
    finally:
        g.stop()
        source.close()


def test_a_redis_outage_is_logged_once_and_retried(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Flushes and looks that fail while Redis is down are logged once, carried over, and
    logged again when they work."""
    store = Store(redis_server.url, "shop")
    book = OutcomeBook()
    g = FleetGuard(store, book=book, evaluate=False)
    serve(book, document(), range(20), fail_on=False)
    redis_server.stop()
    with caplog.at_level("WARNING", "rampup.guard"):
        g._round(g.flush_now)
        g._round(g.flush_now)
        redis_server.start()
        g._round(g.flush_now)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("flush_now failed" in m for m in messages) == 1
    assert sum("works again" in m for m in messages) == 1
    assert sum(c.requests for c in FleetReader(store).counts(FLAG).values()) == 20
    store.close()


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_gets_its_own_client_token_and_thread(store: Store, redis_url: str) -> None:
    """After a fork the child is not the leader, has a new token and client, runs its own
    thread, and flushes only what it served itself (its inherited counts are the parent's)."""
    from rampup import guard_fleet

    book = OutcomeBook()
    g = guard_fleet.start(redis_url, "shop", book=book, evaluate=False, flush_every=(9, 9))
    serve(book, document(), range(30), fail_on=False)  # not flushed yet when the child forks
    parent = (g._token, id(g.store))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        ok = False
        try:
            ok = (g._token, id(g.store)) != parent and not g.leader and g.running
            serve(book, document(), range(1000, 1007), fail_on=False)
            g.flush_now()
        finally:
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    g.stop()
    assert got == b"1"
    # the parent's final flush adds its 30; the child's flush only its own 7
    assert sum(c.requests for c in FleetReader(store).counts(FLAG).values()) == 37


def test_unreadable_or_foreign_data_is_skipped(store: Store) -> None:
    """A stored state that is not JSON is skipped (logged); a flag without a rollout rule is
    not advanced; fields the reader does not know are ignored."""
    from rampup.errors import StoreError
    from rampup.guard_fleet import state_key

    store.push({"flags": {"plain": {"rules": [{"serve": "on"}]}, **document()["flags"]}})
    store.client.hset(state_key(store), mapping={"broken": "{not json", FLAG: "[1, 2]"})
    assert load_states(store) == {}
    with pytest.raises(StoreError, match="no rollout rule"):
        FleetActions(store).set_stage("plain", 1, StageState("plain", 1, 0.0))
    store.client.hset(
        outcomes_key(store, FLAG), mapping={"requests:on": 5, "weird:on": 1, "b999:on": 3}
    )
    assert FleetReader(store).counts(FLAG)["on"].requests == 5
