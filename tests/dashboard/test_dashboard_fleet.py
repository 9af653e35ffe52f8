"""Live figures fleet-wide: with the Redis store, the dashboard shows the sums every process
flushes (``rampup.guard_fleet``), labelled "fleet-wide"; with nothing flushed, or Redis down,
this process's book, labelled "this process". Against a real redis-server."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("werkzeug")
pytest.importorskip("redis")

from werkzeug.test import Client

from rampup.dashboard import Dashboard
from rampup.guard_fleet import flush
from rampup.outcomes import OutcomeBook, OutcomeRecorder, OutcomeSnapshot
from rampup.store import Store
from rampup.wsgi import RampupMiddleware

from .conftest import example_doc

USER = {"X-User": "ann"}
FLAG = "fast-search"


def _authorize(r: Any) -> str | None:
    return r.headers.get("x-user")


def serve(book: OutcomeBook, users: range) -> None:
    """Requests through the WSGI middleware reading ``fast-search``, feeding ``book``; every
    seventh user's request fails."""
    import rampup

    def view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        rampup.flags.variant(FLAG)
        failed = int(environ["HTTP_X_USER"]) % 7 == 0
        start_response("500 Oops" if failed else "200 OK", [])
        return [b""]

    app = RampupMiddleware(
        view, flags=example_doc(), user_header="X-User", listeners=[OutcomeRecorder(book)]
    )
    for user in users:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_USER": str(user)}
        b"".join(app(environ, lambda *a: None))


def test_two_flushed_books_show_summed_with_the_fleet_label(store_url: str) -> None:
    """Two processes' books flushed to Redis: live JSON and the flag page show their sums
    (requests, errors, p50/p99 from the summed histogram), labelled fleet-wide."""
    store = Store(store_url)
    a, b = OutcomeBook(), OutcomeBook()
    serve(a, range(300))
    serve(b, range(300, 700))
    flush(store, a, OutcomeSnapshot())
    flush(store, b, OutcomeSnapshot())
    summed = (a.snapshot() + b.snapshot()).read(FLAG)
    assert len(summed) == 2  # both variants served

    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    data = json.loads(client.get(f"/api/live.json?flag={FLAG}", headers=USER).get_data())
    assert data["label"] == "fleet-wide"
    shown = data["flags"][FLAG]
    assert set(shown) == set(summed)
    for variant, stats in summed.items():
        assert shown[variant]["requests"] == stats.requests
        assert shown[variant]["errors"] == stats.errors
        assert stats.p50 is not None
        assert stats.p99 is not None
        assert shown[variant]["p50_ms"] == pytest.approx(stats.p50 * 1000)
        assert shown[variant]["p99_ms"] == pytest.approx(stats.p99 * 1000)
    assert sum(v["requests"] for v in shown.values()) == 700

    page = client.get(f"/flag/{FLAG}", headers=USER).get_data(as_text=True)
    assert "fleet-wide" in page
    assert "this process" not in page
    assert f"{summed['off'].requests:,}" in page
    listing = client.get("/", headers=USER).get_data(as_text=True)
    assert "fleet-wide" in listing
    store.close()


def test_nothing_flushed_shows_this_process(store_url: str) -> None:
    """No process flushes to Redis: the figures are this process's book, labelled so."""
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    data = json.loads(client.get(f"/api/live.json?flag={FLAG}", headers=USER).get_data())
    assert data["label"] == "this process"
    page = client.get(f"/flag/{FLAG}", headers=USER).get_data(as_text=True)
    assert "this process" in page
    assert "fleet-wide" not in page


def test_redis_down_falls_back_to_this_process(redis_server: Any, store_url: str) -> None:
    """Redis stops after sums were flushed: the page still answers, with this process's
    figures labelled "this process"."""
    store = Store(store_url)
    book = OutcomeBook()
    serve(book, range(50))
    flush(store, book, OutcomeSnapshot())
    store.close()
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    before = json.loads(client.get(f"/api/live.json?flag={FLAG}", headers=USER).get_data())
    assert before["label"] == "fleet-wide"
    redis_server.stop()
    r = client.get(f"/api/live.json?flag={FLAG}", headers=USER)
    assert r.status_code == 200
    assert json.loads(r.get_data())["label"] == "this process"
