"""The Dashboard app itself, through werkzeug's WSGI test client and Starlette's TestClient on
the bare ASGI app: notices, the guard's evidence, live JSON, ids kept off every page, rollback
confirmation, debug mode, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("werkzeug")
pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from werkzeug.test import Client

from rampup import load
from rampup.dashboard import Dashboard, mount_wsgi
from rampup.dashboard.http import MAX_BODY
from rampup.dashboard.security import SESSION_COOKIE
from rampup.guard import Guard, StaticReader
from rampup.outcomes import OutcomeSnapshot, VariantStats
from rampup.sources import StaticSource
from rampup.store import Store

from .clients import csrf_of
from .conftest import EXAMPLE, example_doc

USER = {"X-User": "ann"}


def _authorize(r: Any) -> str | None:
    return r.headers.get("x-user")


def _book() -> OutcomeSnapshot:
    hist = (0,) * 60 + (10,) * 10
    return OutcomeSnapshot(
        {
            "fast-search": {
                "on": VariantStats(100, 30, 30, 0.0, 0.0, hist),
                "off": VariantStats(100, 1, 1, 0.0, 0.0, hist),
            }
        },
        1.0e9,
    )


def test_live_json_gives_each_variant_and_marks_regressions() -> None:
    """The endpoint the script polls: figures, interval, texts and the regression flag."""
    dash = Dashboard(load(example_doc()), authorize=_authorize, outcomes=_book)
    r = Client(dash.wsgi).get("/api/live.json?flag=fast-search", headers=USER)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    data = json.loads(r.get_data())
    assert data["label"] == "this process"
    on = data["flags"]["fast-search"]["on"]
    assert on["requests"] == 100
    assert on["regressing"] is True
    assert on["interval"][0] < 0.3 < on["interval"][1]
    assert data["flags"]["fast-search"]["off"]["regressing"] is False
    assert "30.00 %" in on["text"]["error_rate"]


def test_guard_evidence_and_verdict_on_the_flag_page() -> None:
    """With guard=, a guarded flag's page shows the verdict, E and what a hold waits for."""
    snap = load(example_doc())
    guard = Guard(StaticSource(snap), StaticReader({}))
    dash = Dashboard(snap, authorize=_authorize, guard=guard, outcomes_label="fleet-wide")
    html = Client(dash.wsgi).get("/flag/fast-search", headers=USER).get_data(as_text=True)
    assert "halts at 100" in html
    assert "waits for" in html
    assert "live: fleet-wide" in html
    without = Dashboard(snap, authorize=_authorize)
    html = Client(without.wsgi).get("/flag/fast-search", headers=USER).get_data(as_text=True)
    assert "no guard attached" in html


def test_a_held_rollout_on_a_read_only_flag_page() -> None:
    """A held rollout: the guard's verdict reads "hold: held by an operator", the page badges it
    held and, read-only, shows the edit that releases it (an unheld one: the edit that holds)."""
    data = example_doc()
    data["flags"]["fast-search"]["rules"][0]["rollout"]["held"] = True
    snap = load(data)
    dash = Dashboard(snap, authorize=_authorize, guard=Guard(StaticSource(snap), StaticReader({})))
    html = Client(dash.wsgi).get("/flag/fast-search", headers=USER).get_data(as_text=True)
    assert "hold: held by an operator" in html
    assert '<span class="badge held">held</span>' in html
    assert 'id="edit-hold"' in html
    assert "rollout = { held = false, ... }" in html
    plain = Dashboard(load(example_doc()), authorize=_authorize)
    html = Client(plain.wsgi).get("/flag/fast-search", headers=USER).get_data(as_text=True)
    assert "rollout = { held = true, ... }" in html
    assert "badge held" not in html


def test_no_subject_id_on_any_page(store_url: str) -> None:
    """Listed segment keys and key conditions never reach a page, the history's diffs included."""
    store = Store(store_url)
    data = example_doc()
    data["flags"]["vip"] = {
        "rules": [
            {"conditions": [{"attribute": "key", "op": "in", "value": ["cust-991"]}], "serve": "on"}
        ]
    }
    data["segments"]["qa"]["keys"].append("qa-zed")
    store.push(data, reason="vip list")
    store.close()
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    pages = ["/", "/flag/vip", "/flag/new-checkout", "/history", "/api/live.json"]
    for path in pages:
        html = client.get(path, headers=USER).get_data(as_text=True)
        for secret in ("cust-991", "qa-alice", "qa-bob", "qa-zed"):
            assert secret not in html, (path, secret)
    html = client.get("/flag/vip", headers=USER).get_data(as_text=True)
    assert "key is one of 1 listed value (hidden)" in html


def test_a_crafted_notice_is_not_shown(store_url: str) -> None:
    """The notice after an action is signed: the same text in a crafted link is ignored."""
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    csrf = csrf_of(client.get("/flag/recommendations", headers=USER).get_data(as_text=True))
    r = client.post("/flag/recommendations/unkill", data={"csrf": csrf}, headers=USER)
    assert r.status_code == 303
    shown = client.get(r.headers["Location"], headers=USER).get_data(as_text=True)
    assert "kill switch lifted" in shown
    crafted = client.get("/?done=all+fine%2C+go+home&sig=x", headers=USER).get_data(as_text=True)
    assert "all fine" not in crafted


def test_rollback_that_lifts_a_kill_is_confirmed(store_url: str) -> None:
    """Rolling back to a version without a live kill asks first, then writes."""
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    csrf = csrf_of(client.get("/flag/new-checkout", headers=USER).get_data(as_text=True))
    assert (
        client.post(
            "/flag/new-checkout/kill",
            data={"csrf": csrf, "reason": "r", "confirm": "yes"},
            headers=USER,
        ).status_code
        == 303
    )
    r = client.post("/rollback", data={"csrf": csrf, "version": "1"}, headers=USER)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "lifts the kill switch" in html
    assert 'name="confirm" value="yes"' in html
    store = Store(store_url)
    assert store.head()[0] == 2  # type: ignore[index]
    r = client.post(
        "/rollback", data={"csrf": csrf, "version": "1", "confirm": "yes"}, headers=USER
    )
    assert r.status_code == 303
    assert "new-checkout" not in store.get().killed()  # type: ignore[union-attr]
    assert (
        client.post("/rollback", data={"csrf": csrf, "version": "99"}, headers=USER).status_code
        == 400
    )
    store.close()


def test_read_only_source_refuses_writes() -> None:
    """A genuine POST to a file-backed dashboard is 409: nothing to write to."""
    dash = Dashboard(str(EXAMPLE), authorize=_authorize, secret="k")
    client = Client(dash.wsgi)
    client.set_cookie(SESSION_COOKIE, "s1")
    token = dash.csrf.token("s1", "ann")
    r = client.post("/flag/new-checkout/kill", data={"csrf": token, "reason": "r"}, headers=USER)
    assert r.status_code == 409
    assert "read-only" in r.get_data(as_text=True)


def test_debug_mode_serves_loopback_only() -> None:
    """debug=True without a callback: 200 from 127.0.0.1, 403 from elsewhere."""
    dash = Dashboard(str(EXAMPLE), debug=True)
    client = Client(dash.wsgi)
    assert client.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403


def test_errors_are_plain_answers() -> None:
    """Unknown pages 404, other methods 405, big bodies 413, a failing reader a logged 500."""
    dash = Dashboard(str(EXAMPLE), authorize=_authorize)
    client = Client(dash.wsgi)
    assert client.get("/nowhere", headers=USER).status_code == 404
    assert client.get("/static/x.css").status_code == 404
    assert client.put("/", headers=USER).status_code == 405
    big = client.post(
        "/flag/x/kill",
        data="a=" + "x" * MAX_BODY,
        headers=USER,
        content_type="application/x-www-form-urlencoded",
    )
    assert big.status_code == 413

    def broken() -> OutcomeSnapshot:
        raise RuntimeError("reader down")

    failing = Client(Dashboard(str(EXAMPLE), authorize=_authorize, outcomes=broken).wsgi)
    r = failing.get("/", headers=USER)
    assert r.status_code == 500
    assert r.headers["X-Frame-Options"] == "DENY"


def test_asgi_app_serves_the_same_pages() -> None:
    """The bare ASGI app: lifespan, pages, the 403 and the body cap."""
    dash = Dashboard(str(EXAMPLE), authorize=_authorize)
    with TestClient(dash.asgi) as client:
        r = client.get("/flag/checkout-button", headers=USER)
        assert r.status_code == 200
        assert "Content-Security-Policy" in r.headers
        assert "Set-Cookie" in r.headers
        assert client.get("/", headers={}).status_code == 403
        big = client.post("/", content=b"x" * (MAX_BODY + 1), headers=USER)
        assert big.status_code == 413


def test_mount_wsgi_routes_by_prefix() -> None:
    """mount_wsgi sends the prefix to the dashboard (SCRIPT_NAME set) and the rest to the app."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the shop"]

    dash = Dashboard(str(EXAMPLE), authorize=_authorize)
    client = Client(mount_wsgi(app, "/ops/flags", dash.wsgi))
    assert client.get("/").get_data() == b"the shop"
    assert client.get("/ops/flagsx").get_data() == b"the shop"
    html = client.get("/ops/flags", headers=USER).get_data(as_text=True)
    assert 'href="/ops/flags/flag/new-checkout"' in html


def test_history_lists_serving_processes(store_url: str) -> None:
    """The history page names each process heard from lately and whether it is behind."""
    store = Store(store_url)
    live = store.get()
    assert live is not None
    store.ack("web-1:41", live.sha)
    store.ack("web-2:42", "0" * 64)
    store.close()
    html = Client(Dashboard(store_url, authorize=_authorize).wsgi).get("/history", headers=USER)
    text = html.get_data(as_text=True)
    assert "2 processes, 1 behind" in text
    assert "web-1:41" in text
    assert "web-2:42" in text


def test_store_outage_shows_the_last_good_flags(redis_server: Any, store_url: str) -> None:
    """Redis down: pages still answer with the last good flags and say so; an action is a 503
    that wrote nothing; back up, the note is gone."""
    client = Client(Dashboard(store_url, authorize=_authorize).wsgi)
    csrf = csrf_of(client.get("/flag/new-checkout", headers=USER).get_data(as_text=True))
    redis_server.stop()
    r = client.get("/", headers=USER)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "The flag store is unreachable" in html
    assert "recommendations" in html
    data = {"csrf": csrf, "reason": "r", "confirm": "yes"}
    r = client.post("/flag/new-checkout/kill", data=data, headers=USER)
    assert r.status_code == 503
    assert "nothing was written" in r.get_data(as_text=True)
    redis_server.start()
    store = Store(store_url)
    store.push(example_doc(), reason="again after the restart")
    store.close()
    html = client.get("/", headers=USER).get_data(as_text=True)
    assert "unreachable" not in html
