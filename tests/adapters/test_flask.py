"""The Flask extension, through Flask's own test client."""

from __future__ import annotations

import importlib
import importlib.util
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")

import flask
from flask import Flask, Response, g, redirect, render_template_string, stream_with_context

import rampup
from rampup import MissingDependency
from rampup.context import Flags
from rampup.flask import _TEMPLATE_FLAGS, Rampup, RampupState, flag_required
from rampup.model import Decision

FLAGS = """\
version = 1

[flags.plain]
default = "on"

[flags.dark]
default = "off"

[flags.split]
[[flags.split.rules]]
split = { on = 50, off = 50 }

[flags.staff]
[[flags.staff.rules]]
conditions = [{ attribute = "role", op = "equals", value = "staff" }]
serve = "on"

[flags.color]
variants = { red = "#f00", blue = "#00f" }
default = "red"
[[flags.color.rules]]
conditions = [{ attribute = "header.x-color", op = "equals", value = "blue" }]
serve = "blue"
"""

ANON = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    """A flag file on disk with a boolean, a split, a rule and a multivariate flag."""
    path = tmp_path / "flags.toml"
    path.write_text(FLAGS)
    return path


class Recorder:
    """A listener that records every decision."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def on_decision(self, flags: Flags, decision: Decision) -> None:
        self.decisions.append(decision)


def make_app(flag_file: Path, **options: Any) -> Flask:
    """A small app with views that read flags every way a Flask user can."""
    app = Flask(__name__)
    options.setdefault("watch", False)
    Rampup(app, flags=flag_file, **options)

    @app.get("/")
    def index() -> str:
        return "on" if g.flags.enabled("plain") else "off"

    @app.get("/split")
    def split() -> str:
        return f"{g.flags.variant('split')} {g.flags.subject.key}"

    @app.get("/dark")
    def dark() -> str:
        return str(g.flags.enabled("dark"))

    @app.get("/key")
    def key() -> str:
        return str(g.flags.subject.key)

    return app


def test_one_line_setup(flag_file: Path) -> None:
    """Rampup(app, flags=path) is all it takes for g.flags to answer in a view."""
    app = make_app(flag_file)
    resp = app.test_client().get("/")
    assert resp.status_code == 200
    assert resp.text == "on"
    assert isinstance(app.extensions["rampup"], RampupState)


def test_init_app_pattern_serves_several_apps(flag_file: Path, tmp_path: Path) -> None:
    """One Rampup() instance, init_app'd on two apps, gives each its own flags and options."""
    other = tmp_path / "other.toml"
    other.write_text('version = 1\n[flags.plain]\ndefault = "off"\n')
    ext = Rampup(watch=False)
    apps = []
    for path in (flag_file, other):
        app = Flask(__name__)
        ext.init_app(app, flags=path, cookie_name=f"id_{path.stem}")

        @app.get("/")
        def index() -> str:
            return str(g.flags.enabled("plain"))

        apps.append(app)
    assert [a.test_client().get("/").text for a in apps] == ["True", "False"]
    assert [a.extensions["rampup"].settings.cookie_name for a in apps] == ["id_flags", "id_other"]
    assert not hasattr(ext, "app")


def test_options_from_config(flag_file: Path) -> None:
    """RAMPUP_* config keys set options, including the flag file itself."""
    app = Flask(__name__)
    app.config.update(
        RAMPUP_FLAGS=str(flag_file),
        RAMPUP_USER_HEADER="X-User-Id",
        RAMPUP_WATCH=False,
        RAMPUP_OVERRIDE_SECRET=["new" * 11, "old" * 11],
    )
    Rampup(app)

    @app.get("/")
    def index() -> str:
        return str(g.flags.subject.key)

    assert app.test_client().get("/", headers={"X-User-Id": "u-7"}).text == "u-7"
    settings = app.extensions["rampup"].settings
    assert settings.user_header == "X-User-Id"
    assert settings.override_secret == ("new" * 11, "old" * 11)


def test_flags_default_to_flags_toml_in_the_working_directory(
    flag_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With neither flags= nor RAMPUP_FLAGS, ./flags.toml is loaded."""
    monkeypatch.chdir(flag_file.parent)
    state = Rampup().init_app(Flask(__name__), watch=False)
    assert len(state.source.snapshot) == 5
    assert "flags.toml" in repr(state.source)


def test_keyword_arguments_win_over_config(flag_file: Path, tmp_path: Path) -> None:
    """An explicit keyword (init_app's, then the constructor's) beats the RAMPUP_* key."""
    app = Flask(__name__)
    app.config.update(
        RAMPUP_FLAGS=str(tmp_path / "missing.toml"),
        RAMPUP_COOKIE_NAME="cfg",
        RAMPUP_USER_HEADER="X-Config",
    )
    ext = Rampup(flags=flag_file, cookie_name="ctor", user_header="X-Ctor", watch=False)
    state = ext.init_app(app, user_header="X-Init")
    assert state.settings.cookie_name == "ctor"
    assert state.settings.user_header == "X-Init"
    assert len(state.source.snapshot) == 5


def test_unknown_config_key_is_a_helpful_error(flag_file: Path) -> None:
    """A misspelt RAMPUP_* key raises ValueError naming it, the likely fix and the known keys."""
    app = Flask(__name__)
    app.config["RAMPUP_USER_HEADR"] = "X-User-Id"
    with pytest.raises(ValueError, match="RAMPUP_USER_HEADR") as info:
        Rampup(app, flags=flag_file)
    assert "did you mean RAMPUP_USER_HEADER?" in str(info.value)
    assert "RAMPUP_COOKIE_NAME" in str(info.value)
    assert "rampup" not in app.extensions


def test_unknown_keyword_is_an_error(flag_file: Path) -> None:
    """A misspelt keyword option raises ValueError listing the known ones."""
    with pytest.raises(ValueError, match="user_headr"):
        Rampup(Flask(__name__), flags=flag_file, user_headr="X-User-Id")


def test_init_app_twice_is_refused(flag_file: Path) -> None:
    """Setting up the same app twice raises instead of wrapping it twice."""
    app = make_app(flag_file)
    with pytest.raises(RuntimeError, match="already set up"):
        Rampup(app, flags=flag_file)


def test_debug_and_secret_come_from_the_app(flag_file: Path) -> None:
    """Settings.debug follows app.debug and framework_secret is SECRET_KEY, unless given."""
    app = Flask(__name__)
    app.config.update(DEBUG=True, SECRET_KEY=b"\xffkey")
    Rampup(app, flags=flag_file, watch=False)
    state = app.extensions["rampup"]
    assert state.settings.debug is True
    assert state.settings.framework_secret == "\xffkey"
    app2 = Flask(__name__)
    app2.config["SECRET_KEY"] = "app-secret"
    state2 = Rampup().init_app(
        app2, flags=flag_file, debug=False, framework_secret="mine", watch=False
    )
    assert (state2.settings.debug, state2.settings.framework_secret) == (False, "mine")


def test_overrides_are_signed_with_the_apps_secret_key(flag_file: Path) -> None:
    """A token signed with SECRET_KEY forces a variant; an unsigned entry is refused."""
    from rampup._signing import sign

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "s3cret-0123456789abcdef-0123456789"
    Rampup(app, flags=flag_file, watch=False)

    @app.get("/dark")
    def dark() -> str:
        return str(g.flags.enabled("dark"))

    client = app.test_client()
    token = sign("dark=on", int(time.time()) + 600, "s3cret-0123456789abcdef-0123456789")
    assert client.get("/dark", headers={"X-Rampup-Override": token}).text == "True"
    assert client.get("/dark", headers={"X-Rampup-Override": "dark=on"}).text == "False"
    forged = sign("dark=on", int(time.time()) + 600, "other")
    assert client.get("/dark", headers={"X-Rampup-Override": forged}).text == "False"


def test_debug_app_honours_unsigned_overrides(flag_file: Path) -> None:
    """In debug mode (app.debug), a plain flag=variant override is served and reported."""
    app = Flask(__name__)
    app.debug = True
    Rampup(app, flags=flag_file, watch=False)

    @app.get("/dark")
    def dark() -> str:
        return str(g.flags.enabled("dark"))

    resp = app.test_client().get("/dark", headers={"X-Rampup-Override": "dark=on"})
    assert resp.text == "True"
    assert "dark" in resp.headers["X-Rampup-Overrides"]


def test_g_environ_proxy_and_template_agree(flag_file: Path) -> None:
    """g.flags, environ["rampup.flags"], rampup.flags and the template global are one Flags."""
    app = make_app(flag_file)
    seen: dict[str, Any] = {}

    @app.get("/agree")
    def agree() -> str:
        seen["g"] = g.flags
        seen["environ"] = flask.request.environ["rampup.flags"]
        seen["proxy"] = rampup.flags.decision("color")
        return render_template_string(
            "{{ flags.variant('color') }} {{ flags.enabled('plain') }} {{ flags.value('color') }}"
        )

    resp = app.test_client().get("/agree", headers={"X-Color": "blue"})
    assert resp.text == "blue True #00f"
    assert seen["g"] is seen["environ"]
    assert seen["g"].decisions["color"] is seen["proxy"]


def test_each_flag_decided_once_per_request(flag_file: Path) -> None:
    """Reading a flag through g, the proxy and a template decides it once per request."""
    rec = Recorder()
    app = make_app(flag_file, listeners=[rec])

    @app.get("/many")
    def many() -> str:
        for _ in range(3):
            g.flags.enabled("plain")
            rampup.flags.variant("color")
        return render_template_string("{{ flags.enabled('plain') }}{{ flags.variant('color') }}")

    client = app.test_client()
    assert client.get("/many").text == "Truered"
    assert sorted(d.key for d in rec.decisions) == ["color", "plain"]
    client.get("/many")
    assert len(rec.decisions) == 4  # the next request decides afresh


def test_nothing_is_decided_until_read(flag_file: Path) -> None:
    """A request that reads no flag makes no decision and sets no cookie."""
    rec = Recorder()
    app = make_app(flag_file, listeners=[rec])

    @app.get("/quiet")
    def quiet() -> str:
        return "ok"

    resp = app.test_client().get("/quiet")
    assert resp.text == "ok"
    assert rec.decisions == []
    assert "Set-Cookie" not in resp.headers


def test_anonymous_cookie_minted_only_when_a_split_used_it(flag_file: Path) -> None:
    """Reading non-split flags sets no cookie; reading a split mints a secure-by-default one."""
    client = make_app(flag_file).test_client()
    assert "Set-Cookie" not in client.get("/").headers
    assert "Set-Cookie" not in client.get("/key").headers  # subject resolved, no split used
    resp = client.get("/split")
    (cookie,) = resp.headers.getlist("Set-Cookie")
    variant, key = resp.text.split()
    assert variant in ("on", "off")
    assert cookie.startswith(f"rampup_id={key};")
    parts = {p.strip().split("=")[0] for p in cookie.split(";")}
    assert {"HttpOnly", "Path", "Max-Age", "SameSite"} <= parts
    assert "SameSite=Lax" in cookie
    assert "Secure" not in parts
    assert len(key) == 32


def test_anonymous_cookie_is_secure_on_https_and_renamable(flag_file: Path) -> None:
    """On https the cookie is Secure; its name and domain follow the options."""
    app = make_app(flag_file, cookie_name="visitor", cookie_domain="example.com")
    resp = app.test_client().get("/split", base_url="https://localhost")
    (cookie,) = resp.headers.getlist("Set-Cookie")
    assert cookie.startswith("visitor=")
    assert "; Secure" in cookie
    assert "Domain=example.com" in cookie


def test_anonymous_cookie_is_reused_when_valid(flag_file: Path) -> None:
    """A valid id cookie is the subject key and is not set again; the bucket is sticky."""
    client = make_app(flag_file).test_client()
    client.set_cookie("rampup_id", ANON)
    first = client.get("/split")
    assert first.text.split()[1] == ANON
    assert "Set-Cookie" not in first.headers
    assert client.get("/split").text == first.text


def test_minted_cookie_keeps_the_visitor_in_their_bucket(flag_file: Path) -> None:
    """The cookie the first response set makes later requests use the same key."""
    client = make_app(flag_file).test_client()
    first = client.get("/split")
    assert "Set-Cookie" in first.headers
    second = client.get("/split")
    assert second.text == first.text
    assert "Set-Cookie" not in second.headers


@pytest.mark.parametrize("bad", ["not-an-id", "A" * 32, "a" * 5000, ANON + "0"])
def test_malformed_or_oversized_cookie_is_replaced(flag_file: Path, bad: str) -> None:
    """An id cookie rampup could not have minted is replaced, never trusted, never an error."""
    client = make_app(flag_file).test_client()
    # a raw header: Werkzeug's cookie jar refuses to build an oversized cookie
    resp = client.get("/split", headers={"Cookie": f"rampup_id={bad}"})
    assert resp.status_code == 200
    key = resp.text.split()[1]
    assert key != bad
    assert len(key) == 32
    assert resp.headers["Set-Cookie"].startswith(f"rampup_id={key};")


def test_user_from_header_then_cookie_then_callback(flag_file: Path) -> None:
    """The subject key comes from the header, else the cookie, else the callback."""
    calls: list[Any] = []

    def user(req: Any) -> Any:
        calls.append(req)
        return {"key": "from-callback", "role": "staff"}

    app = make_app(flag_file, user_header="X-User-Id", user_cookie="uid", user=user)

    @app.get("/staff")
    def staff() -> str:
        return f"{g.flags.subject.key} {g.flags.enabled('staff')}"

    client = app.test_client()
    client.set_cookie("uid", "from-cookie")
    assert client.get("/staff", headers={"X-User-Id": "from-header"}).text == "from-header False"
    assert client.get("/staff").text == "from-cookie False"
    assert calls == []
    client.delete_cookie("uid")
    assert client.get("/staff").text == "from-callback True"
    assert len(calls) == 1


def test_callback_gets_the_flask_request_lazily(flag_file: Path) -> None:
    """The user callback receives flask's Request, only once a flag is read."""
    calls: list[Any] = []

    def user(req: Any) -> Any:
        calls.append(req)
        assert req is flask.request._get_current_object()  # type: ignore[attr-defined]
        return req.args.get("u")

    app = make_app(flag_file, user=user)

    @app.get("/noflag")
    def noflag() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/noflag").text == "ok"
    assert calls == []
    assert client.get("/key?u=alice").text == "alice"
    assert isinstance(calls[0], flask.Request)


def test_flask_login_style_callback(flag_file: Path) -> None:
    """A callback reading a context-local "current user" (the Flask-Login pattern) works."""
    from werkzeug.local import LocalProxy

    current_user: Any = LocalProxy(lambda: g.get("user"))

    app = make_app(flag_file, user=lambda req: current_user.id if current_user else None)

    @app.before_request
    def login() -> None:
        if "u" in flask.request.args:
            g.user = type("User", (), {"id": flask.request.args["u"]})()

    client = app.test_client()
    assert client.get("/key?u=bob").text == "bob"
    anon = client.get("/key").text
    assert anon != "bob"
    assert len(anon) == 32


def test_failing_callback_falls_back_to_anonymous(
    flag_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A user callback that raises is logged; the request proceeds with an anonymous subject."""

    def user(req: Any) -> Any:
        raise LookupError("user db down")

    resp = make_app(flag_file, user=user).test_client().get("/split")
    assert resp.status_code == 200
    assert len(resp.text.split()[1]) == 32
    assert "user db down" in caplog.text


class Boom(Exception):
    """An app error that must reach the caller untouched."""


def test_view_exceptions_propagate_unchanged(flag_file: Path) -> None:
    """With PROPAGATE_EXCEPTIONS, the view's own exception object reaches the test client."""
    app = make_app(flag_file)
    app.testing = True
    err = Boom("view failed")

    @app.get("/boom")
    def boom() -> str:
        g.flags.enabled("split")
        raise err

    with pytest.raises(Boom) as info:
        app.test_client().get("/boom")
    assert info.value is err
    assert not rampup.flags.bound


def test_500_handler_still_works_and_gets_the_cookie(flag_file: Path) -> None:
    """An app's 500 handler renders its page, and a minted id cookie is still set."""
    app = make_app(flag_file)

    @app.errorhandler(500)
    def oops(e: Exception) -> tuple[str, int]:
        return "custom 500", 500

    @app.get("/boom")
    def boom() -> str:
        g.flags.enabled("split")
        raise Boom("view failed")

    resp = app.test_client().get("/boom")
    assert (resp.status_code, resp.text) == (500, "custom 500")
    assert resp.headers["Set-Cookie"].startswith("rampup_id=")


def test_flag_required_guards_a_view(flag_file: Path) -> None:
    """flag_required answers 404 unless the flag (or the named variant) is served."""
    app = make_app(flag_file, user_header="X-User-Id")

    @app.get("/plain")
    @flag_required("plain")
    def plain() -> str:
        return "plain"

    @app.get("/dark-only")
    @flag_required("dark")
    def dark_only() -> str:
        return "dark"

    @app.get("/blue")
    @flag_required("color", variant="blue")
    def blue() -> str:
        return "blue"

    @app.get("/unknown")
    @flag_required("no-such-flag")
    def unknown() -> str:
        return "unknown"

    client = app.test_client()
    assert (client.get("/plain").status_code, client.get("/plain").text) == (200, "plain")
    assert client.get("/dark-only").status_code == 404
    assert client.get("/blue").status_code == 404
    assert client.get("/blue", headers={"X-Color": "blue"}).text == "blue"
    assert client.get("/unknown").status_code == 404
    assert plain.__name__ == "plain"


def test_flag_required_on_an_async_view(flag_file: Path) -> None:
    """flag_required keeps an async view async (Flask runs it through asgiref)."""
    pytest.importorskip("asgiref")
    app = make_app(flag_file)

    @app.get("/async-on")
    @flag_required("plain")
    async def async_on() -> str:
        return "async"

    @app.get("/async-off")
    @flag_required("dark")
    async def async_off() -> str:
        return "never"

    client = app.test_client()
    assert client.get("/async-on").text == "async"
    assert client.get("/async-off").status_code == 404


def test_streaming_response_streams_with_flags(flag_file: Path) -> None:
    """A stream_with_context body is produced lazily and can read flags and the request."""
    app = make_app(flag_file)
    events: list[str] = []

    @app.get("/stream")
    def stream() -> Response:
        g.flags.enabled("split")  # read before the headers go out: the cookie is set

        def body() -> Iterator[str]:
            for i in range(3):
                events.append(f"chunk{i}")
                # rampup.flags too: found through Flask's request context, kept alive here by
                # stream_with_context (the WSGI layer does not re-bind per chunk for Flask).
                assert rampup.flags.variant("color") == g.flags.variant("color")
                yield f"{i}:{g.flags.variant('color')}:{flask.request.path}\n"

        return Response(stream_with_context(body()), mimetype="text/plain")

    resp = app.test_client().get("/stream", buffered=False)
    try:
        assert resp.headers["Set-Cookie"].startswith("rampup_id=")
        chunks: Iterator[bytes] = iter(resp.response)  # type: ignore[arg-type]
        # Werkzeug's client pulls the first chunk to see the status; the rest stay unproduced
        assert events == ["chunk0"]
        assert next(chunks) == b"0:red:/stream\n"
        assert next(chunks) == b"1:red:/stream\n"
        assert events == ["chunk0", "chunk1"]
        assert b"".join(chunks) == b"2:red:/stream\n"
    finally:
        resp.close()
    assert not rampup.flags.bound


def test_requests_leave_no_more_garbage_than_bare_flask(
    flag_file: Path, cyclic_garbage: Any
) -> None:
    """The environ must not keep pointing at the request's Flags (which point back at it):
    100 requests that read flags (plain, streamed, send_file) leave what bare Flask leaves."""

    def garbage(with_rampup: bool) -> int:
        app = Flask(__name__)
        if with_rampup:
            Rampup(app, flags=flag_file, watch=False)

        @app.get("/")
        def index() -> str:
            f = getattr(g, "flags", None)
            return f"{f.variant('split')} {f.subject.key}" if f is not None else "bare"

        @app.get("/stream")
        def stream() -> Response:
            def body() -> Iterator[str]:
                yield "x"
                if with_rampup:
                    yield str(rampup.flags.enabled("plain"))  # found through the environ

            return Response(stream_with_context(body()))

        @app.get("/file")
        def file() -> Response:
            if with_rampup:
                g.flags.variant("split")
            return flask.send_file(io.BytesIO(b"data"), mimetype="text/plain")

        client = app.test_client()
        paths = ("/", "/stream", "/file")
        for path in paths:  # warm up: first-request work is not per-request garbage
            client.get(path).close()

        def one(i: int) -> None:
            resp = client.get(paths[i % 3])
            assert resp.status_code == 200
            resp.close()

        return int(cyclic_garbage(one))

    assert garbage(True) <= garbage(False)


def test_head_and_redirect_get_the_minted_cookie(flag_file: Path) -> None:
    """HEAD and redirect responses carry the id cookie when a split minted it."""
    app = make_app(flag_file)

    @app.get("/go")
    def go() -> Any:
        g.flags.enabled("split")
        return redirect("/")

    head = app.test_client().head("/split")
    assert head.data == b""
    assert head.headers["Set-Cookie"].startswith("rampup_id=")
    moved = app.test_client().get("/go")  # a fresh client: no cookie from the HEAD
    assert moved.status_code == 302
    assert moved.headers["Set-Cookie"].startswith("rampup_id=")


def test_hot_reload_through_the_app(flag_file: Path) -> None:
    """An edit to the flag file is served after the source polls; a bad edit keeps the last
    good flags; a request in flight keeps the snapshot it started with."""
    app = make_app(flag_file)

    @app.get("/slow")
    def slow() -> Response:
        def body() -> Iterator[str]:
            yield "start "
            yield str(g.flags.enabled("dark"))

        return Response(stream_with_context(body()))

    source: Any = app.extensions["rampup"].source
    client = app.test_client()
    assert client.get("/dark").text == "False"
    in_flight = client.get("/slow", buffered=False)
    try:
        flag_file.write_text(
            FLAGS.replace('[flags.dark]\ndefault = "off"', '[flags.dark]\ndefault = "on"')
        )
        source.settle = 0  # an in-place edit otherwise waits a second to settle
        assert source.poll() is True
        assert client.get("/dark").text == "True"
        assert in_flight.get_data() == b"start False"
    finally:
        in_flight.close()

    flag_file.write_text(FLAGS + '\n[flags.broken]\ndefault = "maybe"\n')
    assert source.reload() is False
    assert source.last_error is not None
    assert client.get("/dark").text == "True"  # still the last good snapshot


def test_outside_a_request_the_errors_say_what_to_do(flag_file: Path) -> None:
    """Without a request, g.flags is absent and the template global explains the fix."""
    app = make_app(flag_file)
    with app.app_context():
        assert getattr(g, "flags", None) is None
        with pytest.raises(AttributeError, match="Rampup"):
            g.flags  # noqa: B018
        with pytest.raises(rampup.UnboundFlagsError, match="init_app"):
            render_template_string("{{ flags.enabled('plain') }}")
        g.other = 1
        assert g.other == 1


def test_an_apps_own_g_flags_wins(flag_file: Path) -> None:
    """If the app sets g.flags itself, rampup does not shadow it."""
    app = make_app(flag_file)

    @app.get("/mine")
    def mine() -> str:
        g.flags = "mine"
        return str(g.flags)

    assert app.test_client().get("/mine").text == "mine"
    assert _TEMPLATE_FLAGS is app.jinja_env.globals["flags"]


def test_without_flask_the_import_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing rampup.flask without Flask raises MissingDependency naming the extra."""
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "rampup.flask")
    with pytest.raises(MissingDependency, match=r'pip install "rampup\[flask\]"'):
        importlib.import_module("rampup.flask")


def test_example_app_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/flask_app.py serves its page, its template, its JSON and its guarded route."""
    path = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"
    spec = importlib.util.spec_from_file_location("rampup_flask_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # Flask finds templates through it
    spec.loader.exec_module(module)
    app: Flask = module.app
    try:
        client = app.test_client()
        staff = client.get("/", headers={"X-User-Id": "alice"})
        assert "the <b>new checkout</b>" in staff.text
        assert "read in the view: <b>new</b>" in staff.text
        assert "old checkout" in app.test_client().get("/").text
        assert client.get("/admin").status_code == 404  # no user: not served
        assert client.get("/admin", headers={"X-User-Id": "alice"}).status_code == 200
        assert client.get("/flags.json", headers={"X-User-Id": "carol"}).json == {
            "admin-panel": False,
            "checkout-button": "#2da44e",
            "dark-mode": True,
            "new-checkout": False,
            "recommendations": False,
        }
    finally:
        app.extensions["rampup"].source.close()


def test_testing_helpers_reach_flask_views_and_templates(flag_file: Path) -> None:
    """override_flags forces a guarded route open; bound_flags feeds g and templates in a
    test_request_context, with no middleware involved."""
    from rampup.testing import bound_flags, override_flags

    app = make_app(flag_file)

    @app.get("/dark-only")
    @flag_required("dark")
    def dark_only() -> str:
        return "dark"

    client = app.test_client()
    assert client.get("/dark-only").status_code == 404
    with override_flags({"dark": "on"}):
        assert client.get("/dark-only").text == "dark"
    with (
        app.test_request_context("/"),
        bound_flags(rampup.load(flag_file), "u-1", color="blue") as f,
    ):
        assert g.flags is f
        assert render_template_string("{{ flags.variant('color') }}") == "blue"
