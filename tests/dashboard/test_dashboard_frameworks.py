"""The dashboard mounted in Flask, Django and FastAPI, through each framework's own test client:
pages, the 403, CSRF refusal, a kill with its confirmation through a real redis-server, and the
edit shown for a read-only flag file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("django")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from django_setup import configure_django
from rampup.store import Store

from .clients import PREFIX, DjangoClient, FlaskClient, StarletteClient, csrf_of
from .conftest import EXAMPLE

configure_django()

KINDS = {"flask": FlaskClient, "django": DjangoClient, "fastapi": StarletteClient}


@pytest.fixture(params=list(KINDS))
def make(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Build the dashboard for a flag source in each framework."""
    made: list[Any] = []

    def build(flags: Any) -> Any:
        client = KINDS[request.param](flags)
        made.append(client)
        return client

    yield build
    for c in made:
        if hasattr(c, "close"):
            c.close()


def test_list_and_flag_pages(make: Any) -> None:
    """The list shows every flag; the flag page its rules in words and variants."""
    client = make(str(EXAMPLE))
    status, html, headers = client.get(f"{PREFIX}/")
    assert status == 200
    for key in ("new-checkout", "checkout-button", "recommendations", "admin-panel"):
        assert key in html
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    status, html, _ = client.get(f"{PREFIX}/flag/checkout-button")
    assert status == 200
    assert "if segment beta: serve green" in html
    assert 'fill="#2da44e"' in html  # the colour value's swatch
    status, html, _ = client.get(f"{PREFIX}/?filter=killed")
    assert "recommendations" in html
    assert "new-checkout" not in html


def test_unauthorised_user_gets_403(make: Any) -> None:
    """Without a user from the callback every page is 403, the static files excepted."""
    client = make(str(EXAMPLE))
    assert client.get(f"{PREFIX}/", user=None)[0] == 403
    assert client.get(f"{PREFIX}/flag/new-checkout", user=None)[0] == 403
    assert client.get(f"{PREFIX}/static/dashboard.js", user=None)[0] == 200


def test_read_only_source_shows_the_edit(make: Any) -> None:
    """A flag file: no kill button, but the exact TOML edit and the file's path."""
    client = make(str(EXAMPLE))
    _, html, _ = client.get(f"{PREFIX}/flag/new-checkout")
    assert "[flags.new-checkout]\nkilled = true" in html
    assert str(EXAMPLE) in html
    assert "Kill…" not in html
    assert 'data-copy="edit-kill"' in html


def test_post_without_a_valid_token_is_refused(make: Any, store_url: str) -> None:
    """A POST with no or a wrong CSRF token is 403 and writes nothing."""
    client = make(store_url)
    client.get(f"{PREFIX}/")  # gets the session cookie
    for path in ("new-checkout/kill", "fast-search/hold", "fast-search/release"):
        for data in ({"reason": "r", "confirm": "yes"}, {"csrf": "forged", "reason": "r"}):
            status, html, _ = client.post(f"{PREFIX}/flag/{path}", data)
            assert status == 403, path
            assert "token" in html or "session" in html
    store = Store(store_url)
    assert store.head()[0] == 1  # type: ignore[index]
    store.close()


def test_kill_with_confirmation_through_redis(make: Any, store_url: str) -> None:
    """Kill asks for confirmation first, then writes through the store; the page shows who and
    why, and the history holds the audit entry."""
    client = make(store_url)
    _, html, _ = client.get(f"{PREFIX}/flag/new-checkout")
    csrf = csrf_of(html)
    status, html, _ = client.post(
        f"{PREFIX}/flag/new-checkout/kill", {"csrf": csrf, "reason": "5xx on payment"}
    )
    assert status == 200
    assert 'name="confirm" value="yes"' in html
    store = Store(store_url)
    assert store.get().killed() == {"recommendations"}  # type: ignore[union-attr]
    status, _, headers = client.post(
        f"{PREFIX}/flag/new-checkout/kill",
        {"csrf": csrf, "reason": "5xx on payment", "confirm": "yes"},
    )
    assert status == 303
    assert headers["Location"].startswith(f"{PREFIX}/flag/new-checkout?done=")
    live = store.get()
    assert live is not None
    assert "new-checkout" in live.killed()
    assert live.by == "alice (dashboard)"
    assert live.reason == "kill new-checkout: 5xx on payment"
    _, html, _ = client.get(f"{PREFIX}/flag/new-checkout")
    assert "Killed by alice (dashboard)" in html
    assert "5xx on payment" in html
    _, html, _ = client.get(f"{PREFIX}/history")
    assert "new-checkout: killed" in html
    store.close()


def test_invalid_inputs_are_400(make: Any, store_url: str) -> None:
    """A kill without a reason, an over-long reason, a version that is not a number, or an
    unknown flag: 400 and nothing written."""
    client = make(store_url)
    csrf = csrf_of(client.get(f"{PREFIX}/flag/new-checkout")[1])
    cases = [
        (f"{PREFIX}/flag/new-checkout/kill", {"reason": "", "confirm": "yes"}),
        (f"{PREFIX}/flag/new-checkout/kill", {"reason": "x" * 501, "confirm": "yes"}),
        (f"{PREFIX}/flag/nope/kill", {"reason": "r", "confirm": "yes"}),
        (f"{PREFIX}/rollback", {"version": "1; DROP"}),
        (f"{PREFIX}/flag/fast-search/advance", {"stage": "-1"}),
        (f"{PREFIX}/flag/fast-search/hold", {"reason": " "}),
    ]
    for path, data in cases:
        assert client.post(path, {"csrf": csrf, **data})[0] == 400, path
    store = Store(store_url)
    assert store.head()[0] == 1  # type: ignore[index]
    store.close()


def test_unkill_rollback_and_advance_through_redis(make: Any, store_url: str) -> None:
    """Unkill, advance a guarded stage and roll back each write one version with its author."""
    client = make(store_url)
    csrf = csrf_of(client.get(f"{PREFIX}/flag/recommendations")[1])
    store = Store(store_url)
    assert (
        client.post(f"{PREFIX}/flag/recommendations/unkill", {"csrf": csrf, "reason": "ok"})[0]
        == 303
    )
    assert "recommendations" not in store.get().killed()  # type: ignore[union-attr]
    path = f"{PREFIX}/flag/fast-search/advance"
    assert client.post(path, {"csrf": csrf, "stage": "1"})[0] == 303
    rules = store.get().data["flags"]["fast-search"]["rules"]  # type: ignore[union-attr]
    assert rules[0]["rollout"]["stage"] == 2
    assert client.post(path, {"csrf": csrf, "stage": "1"})[0] == 409  # moved meanwhile
    # rolling back to v1 would lift nothing (v1 kills recommendations): no confirmation needed
    assert client.post(f"{PREFIX}/rollback", {"csrf": csrf, "version": "1"})[0] == 303
    live = store.get()
    assert live is not None
    assert live.version == 4
    assert live.killed() == {"recommendations"}
    assert live.reason.startswith("rollback to v1")
    store.close()


def test_flask_callback_sees_the_flask_session() -> None:
    """In Flask the callback runs in Flask's request context: flask.session names the user."""
    import flask

    from rampup.dashboard.flask import mount

    app = flask.Flask("shop")
    app.secret_key = "test-secret"

    @app.post("/login")
    def login() -> str:
        flask.session["user"] = "ann"
        return "ok"

    mount(app, PREFIX, flags=str(EXAMPLE), authorize=lambda r: flask.session.get("user"))
    client = app.test_client()
    assert client.get(f"{PREFIX}/").status_code == 403
    client.post("/login")
    r = client.get(f"{PREFIX}/")
    assert r.status_code == 200
    assert "· ann</span>" in r.get_data(as_text=True)


def test_hold_and_release_through_redis(make: Any, store_url: str) -> None:
    """Hold sets held in the rollout through the store, with who and why in its history; the
    page offers Release, which clears it; a second Release is refused (409)."""
    client = make(store_url)
    _, html, _ = client.get(f"{PREFIX}/flag/fast-search")
    csrf = csrf_of(html)
    assert "Hold at this stage" in html
    assert "Release the hold" not in html
    store = Store(store_url)
    path = f"{PREFIX}/flag/fast-search"
    status, _, headers = client.post(f"{path}/hold", {"csrf": csrf, "reason": "peak sales"})
    assert status == 303
    assert headers["Location"].startswith(f"{path}?done=")
    live = store.get()
    assert live is not None
    assert live.data["flags"]["fast-search"]["rules"][0]["rollout"]["held"] is True
    assert live.data["flags"]["fast-search"]["rules"][0]["rollout"]["stage"] == 1
    assert (live.by, live.reason) == ("alice (dashboard)", "hold fast-search: peak sales")
    _, html, _ = client.get(path)
    assert "Release the hold" in html
    assert "held by an operator" in html
    assert "hold fast-search: peak sales" in html  # the flag's own history: the audit entry
    _, html, _ = client.get(f"{PREFIX}/history")
    assert "hold fast-search: peak sales" in html
    assert client.post(f"{path}/hold", {"csrf": csrf, "reason": "again"})[0] == 409
    status, _, _ = client.post(f"{path}/release", {"csrf": csrf, "reason": "sales over"})
    assert status == 303
    live = store.get()
    assert live is not None
    assert "held" not in live.data["flags"]["fast-search"]["rules"][0]["rollout"]
    assert (live.version, live.reason) == (3, "release fast-search: sales over")
    assert client.post(f"{path}/release", {"csrf": csrf})[0] == 409
    assert "Hold at this stage" in client.get(path)[1]
    store.close()
