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
