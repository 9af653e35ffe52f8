"""rampup.testing: override_flags, bound_flags and snapshot_from, through real adapters."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import warnings
from typing import Any

import pytest

import rampup
from rampup import Reason, Subject
from rampup.testing import FlagOverrideError, bound_flags, override_flags, snapshot_from

FLAGS: dict[str, Any] = {
    "flags": {
        "new-checkout": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "checkout-button": {
            "variants": {"blue": "#00f", "green": "#0f0", "orange": "#f80"},
            "default": "blue",
        },
        "recommendations": {"killed": True},
        "admin-panel": {"overridable": False},
    }
}


@pytest.fixture
def snapshot() -> rampup.Snapshot:
    """The test flags, compiled."""
    return snapshot_from(FLAGS)


def assert_nothing_forced(snapshot: rampup.Snapshot) -> None:
    """Every flag decides by its rules again: no forcing is left active."""
    for subject in (Subject("u1"), Subject("user-42"), Subject(None)):
        f = rampup.Flags(snapshot, subject)
        reasons = {key: f.decision(key).reason for key in snapshot.flags}
        assert Reason.OVERRIDE not in reasons.values(), reasons


# -- snapshot_from -----------------------------------------------------------------------------
def test_snapshot_from_terse_forms() -> None:
    """The terse dict builds flags that always serve what they name."""
    snap = snapshot_from(
        {
            "new-checkout": True,
            "legacy": False,
            "button": "green",
            "theme": ["light", "dark"],
            "banner": {"variants": {"a": 1, "b": 2}, "default": "b"},
        }
    )
    f = rampup.Flags(snap, Subject("u1"))
    assert f.enabled("new-checkout") is True
    assert f.decision("new-checkout").reason is Reason.DEFAULT
    assert f.enabled("legacy") is False
    assert (f.variant("button"), f.value("button")) == ("green", "green")
    assert f.variant("theme") == "light"
    assert [v.name for v in snap.flags["theme"].variants] == ["light", "dark"]
    assert f.value("banner") == 2


def test_snapshot_from_file_format() -> None:
    """A mapping in the flag-file format is loaded as rampup.load would."""
    snap = snapshot_from(FLAGS)
    assert set(snap.flags) == set(FLAGS["flags"])
    assert snap.flags["recommendations"].killed


def test_snapshot_from_rejects_unknown_forms() -> None:
    """A value that is no known terse form raises TypeError naming the flag."""
    with pytest.raises(TypeError, match="'max-items'"):
        snapshot_from({"max-items": 10})


def test_snapshot_from_validates_tables() -> None:
    """A flag table with a mistake raises ConfigError like a flag file would."""
    with pytest.raises(rampup.ConfigError, match="not a variant"):
        snapshot_from({"banner": {"variants": ["a", "b"], "default": "c"}})


# -- bound_flags -------------------------------------------------------------------------------
def test_bound_flags_binds_and_unbinds(snapshot: rampup.Snapshot) -> None:
    """rampup.flags works inside bound_flags and is unbound again after it."""
    assert not rampup.flags.bound
    with bound_flags(snapshot, {"key": "u1", "plan": "pro"}) as f:
        assert rampup.flags.bound
        assert rampup.flags.subject == Subject("u1", {"plan": "pro"})
        assert rampup.flags.variant("checkout-button") == "blue"
        assert f.decisions["checkout-button"].reason is Reason.DEFAULT
    assert not rampup.flags.bound
    with pytest.raises(rampup.UnboundFlagsError, match="bound_flags"):
        rampup.flags.enabled("new-checkout")


def test_bound_flags_forces_keywords(snapshot: rampup.Snapshot) -> None:
    """Keyword arguments force variants; `_` matches `-` in a defined key."""
    with bound_flags(snapshot, "u1", checkout_button="orange", new_checkout=True):
        assert rampup.flags.variant("checkout-button") == "orange"
        assert rampup.flags.enabled("new-checkout")
    assert_nothing_forced(snapshot)


def test_bound_flags_rejects_unknown_keyword(snapshot: rampup.Snapshot) -> None:
    """A keyword naming no flag fails at once, with a suggestion."""
    with pytest.raises(FlagOverrideError, match="did you mean 'checkout-button'"):  # noqa: SIM117
        with bound_flags(snapshot, None, checkout_buton="green"):
            pass
    assert not rampup.flags.bound


def test_bound_flags_accepts_a_path(tmp_path: Any) -> None:
    """A flag file path is loaded."""
    path = tmp_path / "flags.toml"
    path.write_text("[flags.beta]\ndefault = 'on'\n")
    with bound_flags(path):
        assert rampup.flags.enabled("beta")


# -- override_flags ----------------------------------------------------------------------------
def test_override_forces_and_restores(snapshot: rampup.Snapshot) -> None:
    """Forced variants are served with reason OVERRIDE and restored on exit."""
    with bound_flags(snapshot, "u1") as f:
        with override_flags({"checkout-button": "green"}) as forced:
            assert forced == {"checkout-button": "green"}
            d = rampup.flags.decision("checkout-button")
            assert (d.variant, d.value, d.reason) == ("green", "#0f0", Reason.OVERRIDE)
        assert rampup.flags.variant("checkout-button") == "blue"
        assert f.decision("checkout-button").reason is Reason.DEFAULT
    assert_nothing_forced(snapshot)


def test_override_nests(snapshot: rampup.Snapshot) -> None:
    """The innermost override wins; leaving it restores the outer one."""
    with bound_flags(snapshot), override_flags({"checkout-button": "green", "new-checkout": True}):
        with override_flags({"checkout-button": "orange"}):
            assert rampup.flags.variant("checkout-button") == "orange"
            assert rampup.flags.enabled("new-checkout")
        assert rampup.flags.variant("checkout-button") == "green"
        assert rampup.flags.enabled("new-checkout")


def test_override_beats_kill_switch_and_overridable(snapshot: rampup.Snapshot) -> None:
    """Tests can force both sides of killed and non-overridable flags."""
    with bound_flags(snapshot):
        assert not rampup.flags.enabled("recommendations")
    with bound_flags(snapshot), override_flags({"recommendations": "on", "admin-panel": True}):
        assert rampup.flags.enabled("recommendations")
        assert rampup.flags.enabled("admin-panel")


def test_override_entered_after_a_read(snapshot: rampup.Snapshot) -> None:
    """A decision memoized before the override does not hide the forced variant."""
    with bound_flags(snapshot):
        assert rampup.flags.variant("checkout-button") == "blue"
        with override_flags({"checkout-button": "green"}):
            assert rampup.flags.variant("checkout-button") == "green"
        assert rampup.flags.variant("checkout-button") == "blue"


@pytest.mark.parametrize(
    ("forced", "message"),
    [
        (
            {"new-chekout": "on"},
            r"unknown flag 'new-chekout' forced \(did you mean 'new-checkout'\?\)",
        ),
        (
            {"checkout-button": "purple"},
            r"flag 'checkout-button' has no variant 'purple' to "
            r"force \(variants: 'blue', 'green', 'orange'\)",
        ),
        ({"checkout-button": True}, "has no variant 'on'"),
    ],
)
def test_override_rejects_typos_eagerly(
    snapshot: rampup.Snapshot, forced: dict[str, Any], message: str
) -> None:
    """With a known snapshot, an unknown flag or variant fails on entering."""
    with pytest.raises(FlagOverrideError, match=message):  # noqa: SIM117
        with override_flags(forced, snapshot=snapshot):
            pass
    assert_nothing_forced(snapshot)


def test_override_rejects_typos_at_first_read(snapshot: rampup.Snapshot) -> None:
    """Without a known snapshot, the first read of any flag fails, naming the typo."""
    f = rampup.Flags(snapshot, Subject("u1"))
    with pytest.raises(FlagOverrideError, match="unknown flag 'new-chekout'"):  # noqa: SIM117
        with override_flags({"new-chekout": "on"}):
            f.enabled("checkout-button")
    assert f.enabled("checkout-button") is True  # "#00f" is truthy; no error once restored


def test_override_reraises_a_swallowed_typo(snapshot: rampup.Snapshot) -> None:
    """An app that swallows the error does not hide it: leaving the block raises it."""
    f = rampup.Flags(snapshot)

    def app_that_hides_errors() -> None:
        with override_flags({"checkout-button": "purple"}), contextlib.suppress(Exception):
            f.variant("checkout-button")

    with pytest.raises(FlagOverrideError, match="no variant 'purple'"):
        app_that_hides_errors()


def test_override_rejects_non_variant_values() -> None:
    """A forced value that is not a variant name or a bool is a TypeError."""
    with pytest.raises(TypeError, match="'new-checkout' is forced to 1"):
        override_flags({"new-checkout": 1})  # type: ignore[dict-item]


def test_override_tolerates_a_second_smaller_snapshot(snapshot: rampup.Snapshot) -> None:
    """A key another snapshot defines is not a typo in a helper's smaller snapshot."""
    small = rampup.Flags(snapshot_from({"other": True}))
    with override_flags({"checkout-button": "green"}):
        assert rampup.Flags(snapshot).variant("checkout-button") == "green"
        assert small.enabled("other")


def test_override_decorator_sync(snapshot: rampup.Snapshot) -> None:
    """As a decorator, each call runs with the variants forced."""

    @override_flags({"checkout-button": "orange"})
    def read() -> str | None:
        return rampup.Flags(snapshot).variant("checkout-button")

    assert read() == "orange"
    assert read() == "orange"
    assert read.__name__ == "read"
    assert rampup.Flags(snapshot).variant("checkout-button") == "blue"


def test_override_decorator_async(snapshot: rampup.Snapshot) -> None:
    """Async functions are decorated with an async wrapper."""

    @override_flags({"new-checkout": "off"})
    async def read() -> bool:
        await asyncio.sleep(0)
        return rampup.Flags(snapshot, Subject("u1")).enabled("new-checkout")

    assert asyncio.iscoroutinefunction(read)
    assert asyncio.run(read()) is False
    assert_nothing_forced(snapshot)


def test_override_reaches_other_threads(snapshot: rampup.Snapshot) -> None:
    """Code running in another thread (a test server) sees the forced variants."""
    seen: list[str | None] = []

    def work() -> None:
        seen.append(rampup.Flags(snapshot).variant("checkout-button"))

    with override_flags({"checkout-button": "green"}):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert seen == ["green"]


# -- through the adapters ---------------------------------------------------------------------
def test_override_through_flask_and_wsgi_middleware(snapshot: rampup.Snapshot) -> None:
    """A Flask app behind rampup.wsgi.RampupMiddleware serves the forced variant."""
    pytest.importorskip("flask")
    from flask import Flask

    from rampup.wsgi import RampupMiddleware

    app = Flask(__name__)
    app.testing = True

    @app.route("/")
    def index() -> str:
        return f"{rampup.flags.variant('checkout-button')} {rampup.flags.enabled('new-checkout')}"

    app.wsgi_app = RampupMiddleware(app.wsgi_app, flags=snapshot)  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/").text.startswith("blue ")
    with override_flags({"checkout-button": "orange", "new-checkout": "on"}):
        assert client.get("/").text == "orange True"
    with override_flags({"new-checkout": "off"}):
        assert client.get("/").text == "blue False"


def test_override_typo_fails_a_flask_test_that_hides_it(snapshot: rampup.Snapshot) -> None:
    """Even when Flask turns the error into a 500, leaving the block raises it."""
    pytest.importorskip("flask")
    from flask import Flask

    from rampup.wsgi import RampupMiddleware

    app = Flask(__name__)  # not testing: errors become 500 responses

    @app.route("/")
    def index() -> str:
        return str(rampup.flags.variant("checkout-button"))

    app.wsgi_app = RampupMiddleware(app.wsgi_app, flags=snapshot)  # type: ignore[method-assign]
    app.logger.disabled = True
    client = app.test_client()
    with pytest.raises(FlagOverrideError, match="unknown flag 'chekout-button'"):  # noqa: SIM117
        with override_flags({"chekout-button": "green"}):
            assert client.get("/").status_code == 500


def test_override_through_the_flask_extension(snapshot: rampup.Snapshot) -> None:
    """With rampup.flask.Rampup, g.flags, Jinja templates and flag_required all see the
    forced variants."""
    pytest.importorskip("flask")
    from flask import Flask, g, render_template_string

    from rampup.flask import Rampup, flag_required

    app = Flask(__name__)
    app.testing = True
    Rampup(app, flags=snapshot)

    @app.route("/")
    def index() -> str:
        return render_template_string(
            "{{ g.flags.variant('checkout-button') }} {{ flags.enabled('new-checkout') }}"
        )

    @app.route("/admin")
    @flag_required("admin-panel")
    def admin() -> str:
        return f"admin {g.flags.variant('admin-panel')}"

    client = app.test_client()
    assert client.get("/admin").status_code == 404
    with override_flags({"checkout-button": "green", "new-checkout": True, "admin-panel": "on"}):
        assert client.get("/").text == "green True"
        assert client.get("/admin").text == "admin on"
    with override_flags({"new-checkout": False}):
        assert client.get("/").text == "blue False"


DJANGO_APP = """
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

import rampup
from rampup.testing import override_flags

settings.configure(
    SECRET_KEY="test", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="__main__",
    INSTALLED_APPS=["rampup.django"], MIDDLEWARE=["rampup.django.RampupMiddleware"],
    RAMPUP={"FLAGS": {"flags": {"new-checkout": {"default": "off"}}}},
)
django.setup()


def index(request):
    return HttpResponse(f"{request.flags.enabled('new-checkout')} "
                        f"{rampup.flags.variant('new-checkout')}")


urlpatterns = [path("", index)]

from django.test import Client

client = Client()
print(client.get("/").content.decode())
with override_flags({"new-checkout": "on"}):
    print(client.get("/").content.decode())
print(client.get("/").content.decode())
"""


def test_override_through_django(tmp_path: Any) -> None:
    """Django's middleware serves forced variants to request.flags and rampup.flags (in a
    subprocess, so this test's Django settings cannot clash with other test modules)."""
    pytest.importorskip("django")
    script = tmp_path / "django_app.py"
    script.write_text(DJANGO_APP)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["False off", "True on", "False off"]


def _starlette_client(app: Any) -> Any:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    with warnings.catch_warnings():
        # Starlette >= 1.x prefers httpx2 and warns at import when given httpx.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app)


def test_override_through_starlette_and_asgi_middleware(snapshot: rampup.Snapshot) -> None:
    """A Starlette app behind rampup.asgi.RampupMiddleware, run by TestClient in another
    thread, serves the forced variant."""
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rampup.asgi import RampupMiddleware

    async def index(request: Request) -> PlainTextResponse:
        via_state = request.state.flags.variant("checkout-button")
        return PlainTextResponse(f"{rampup.flags.variant('checkout-button')} {via_state}")

    app = Starlette(routes=[Route("/", index)])
    app.add_middleware(RampupMiddleware, flags=snapshot)
    with _starlette_client(app) as client:
        assert client.get("/").text == "blue blue"
        with override_flags({"checkout-button": "green"}):
            assert client.get("/").text == "green green"
        assert client.get("/").text == "blue blue"
        with pytest.raises(FlagOverrideError, match="no variant 'purple'"):  # noqa: SIM117
            with override_flags({"checkout-button": "purple"}):
                client.get("/")
