"""The request plumbing every adapter shares (rampup.lifecycle): options and subjects."""

from __future__ import annotations

from typing import Any

import pytest

from rampup.lifecycle import Runtime
from rampup.options import Options
from rampup.wsgi import WSGIView

FLAGS = {"flags": {"split": {"rules": [{"split": {"on": 50, "off": 50}}]}}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cookie_samesite": "Laxx"}, "cookie_samesite='Laxx'"),
        ({"overrides": "signd"}, "overrides='signd'"),
        ({"user": "myapp.current_user"}, "must be a callable"),
    ],
)
def test_bad_settings_fail_at_start_up(options: dict[str, Any], message: str) -> None:
    """A misspelt option or value is a ValueError when the middleware is built, naming it."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Options.from_options(options)


def test_unknown_option_is_a_type_error_with_a_hint() -> None:
    """A misspelt option name is a TypeError naming it and the likely fix."""
    with pytest.raises(TypeError, match=r"'user_headr' .did you mean 'user_header'.*known: "):
        Options.from_options({"user_headr": "X-User-Id"})


def test_identify_after_reading_the_subject_sets_no_anonymous_cookie() -> None:
    """Reading .subject mints an anonymous id; identify() replaces the subject, so that id is
    never used and no cookie is set for it."""
    runtime = Runtime(FLAGS, Options())
    f = runtime.open({}, WSGIView)
    assert f.subject.key == f.minted
    assert f.identify("user-7")
    f.decision("split")
    assert f.subject.key == "user-7"
    assert runtime.headers(f) is None


def test_anonymous_cookie_is_set_when_a_split_used_the_minted_id() -> None:
    """The control: without identify(), the minted id used by a split is set as a cookie."""
    runtime = Runtime(FLAGS, Options(cookie_samesite="Strict"))
    f = runtime.open({"wsgi.url_scheme": "https"}, WSGIView)
    f.decision("split")
    headers = runtime.headers(f)
    assert headers is not None
    [(name, value)] = headers.pairs()
    assert name == "Set-Cookie"
    assert value.startswith(f"rampup_id={f.minted}; ")
    assert "SameSite=Strict" in value
    assert value.endswith("; Secure")


class _Ends:
    """A listener that records request ends, and says per request whether it wants them."""

    def __init__(self, want: bool) -> None:
        self.want = want
        self.ended: list[int | None] = []

    def on_decision(self, flags: Any, decision: Any) -> None:
        pass

    def on_request_end(self, flags: Any, status: int | None, error: Any) -> None:
        self.ended.append(status)

    def wants_end(self, flags: Any) -> bool:
        return self.want


def test_listeners_that_do_not_want_the_end_skip_following_the_body() -> None:
    """wants_end() False: a produced body is handed over as is and no end is reported;
    True: the end is reported once, with the status: at once for a produced (list) body,
    handed over as is (no app code runs while it is sent), else once the body is done."""
    from rampup.wsgi import RampupMiddleware

    produced = [b"x"]

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("201 Created", [])
        return produced if environ["PATH_INFO"] == "/list" else iter(produced)

    for want in (False, True):
        listener = _Ends(want)
        mw = RampupMiddleware(app, flags=FLAGS, listeners=[listener])
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/list"}, lambda s, h, e=None: None)
        assert body is produced
        assert listener.ended == ([201] if want else [])
        body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": "/gen"}, lambda s, h, e=None: None)
        assert listener.ended == ([201] if want else [])  # not yet: the body is not done
        assert b"".join(body) == b"x"
        getattr(body, "close", lambda: None)()
        assert listener.ended == ([201, 201] if want else [])


class _ReadsOnly(_Ends):
    """An end listener whose end matters only for requests that read a flag."""

    ends_need_reads = True


class _Leaves(_Ends):
    """A listener that leaves each request at its first decision."""

    def on_decision(self, flags: Any, decision: Any) -> None:
        flags.listeners = tuple(x for x in flags.listeners if x is not self)


def _wsgi_get(mw: Any, path: str) -> None:
    body = mw({"REQUEST_METHOD": "GET", "PATH_INFO": path}, lambda s, h, e=None: None)
    b"".join(body)
    getattr(body, "close", lambda: None)()


def _reading_app(environ: dict[str, Any], start_response: Any) -> Any:
    import rampup

    if environ["PATH_INFO"] == "/read":
        rampup.flags.enabled("split")
    start_response("200 OK", [])
    return iter([b"x"])  # a generator body: the adapter follows it only if an end is due


@pytest.mark.parametrize("adapter", ["wsgi", "asgi"])
def test_a_request_reading_no_flag_ends_unreported_when_every_listener_needs_reads(
    adapter: str,
) -> None:
    """Every end listener declares ``ends_need_reads``: a request that read no flag reports no
    end (the WSGI body is handed over as is); one that read a flag does. One listener without
    the declaration (the control) is told of every end."""
    from rampup.wsgi import RampupMiddleware

    for listeners, expected in (
        ([_ReadsOnly(True), _ReadsOnly(True)], [[200], [200]]),
        ([_ReadsOnly(True), _Ends(True)], [[200, 200], [200, 200]]),
    ):
        if adapter == "wsgi":
            mw = RampupMiddleware(_reading_app, flags=FLAGS, listeners=listeners)
            _wsgi_get(mw, "/none")
            _wsgi_get(mw, "/read")
        else:
            _asgi_get(listeners, "/none")
            _asgi_get(listeners, "/read")
        assert [x.ended for x in listeners] == expected


def _asgi_get(listeners: list[Any], path: str) -> None:
    import asyncio

    import rampup
    from rampup.asgi import RampupMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/read":
            rampup.flags.enabled("split")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    mw = RampupMiddleware(app, flags=FLAGS, listeners=listeners)
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    asyncio.run(mw(scope, receive, send))


def test_a_listener_that_left_the_request_is_not_told_of_its_end() -> None:
    """A listener that dropped itself from ``flags.listeners`` hears nothing more of that
    request, its end included; one that stayed (the control) is told."""
    from rampup.wsgi import RampupMiddleware

    leaves, stays = _Leaves(True), _Ends(True)
    mw = RampupMiddleware(_reading_app, flags=FLAGS, listeners=[leaves, stays])
    _wsgi_get(mw, "/read")
    assert (leaves.ended, stays.ended) == ([], [200])


def test_a_malformed_id_cookie_is_replaced_with_a_reason_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rampup_id that rampup could not have minted is not trusted: a new id is minted,
    and the debug log says why (without echoing the untrusted value)."""
    caplog.set_level("DEBUG", logger="rampup")
    runtime = Runtime(FLAGS, Options())
    f = runtime.open({"HTTP_COOKIE": "rampup_id=<script>"}, WSGIView)
    assert f.subject.key == f.minted
    assert f.minted is not None
    assert "ignoring the rampup_id cookie (8 chars)" in caplog.text
    assert "<script>" not in caplog.text


def test_an_unusable_user_header_is_ignored_with_a_reason_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An X-User-Id over 256 characters is not an id: the subject falls back to the cookie
    source, and the debug log says which header was ignored and why."""
    caplog.set_level("DEBUG", logger="rampup")
    runtime = Runtime(FLAGS, Options(user_header="X-User-Id", user_cookie="uid"))
    environ = {"HTTP_X_USER_ID": "u" * 300, "HTTP_COOKIE": "uid=user-9"}
    f = runtime.open(environ, WSGIView)
    assert f.subject.key == "user-9"
    assert "ignoring the X-User-Id header (300 chars)" in caplog.text


class _Forcing:
    """An override reader that forces split=on and counts its reads."""

    eager = False

    def __init__(self) -> None:
        self.reads = 0

    def read(self, f: Any) -> Any:
        from rampup.overrides import Outcome, OverrideState

        self.reads += 1
        return OverrideState({"split": "on"}, (Outcome("split", "header", "honoured"),))

    def response_headers(self, f: Any) -> list[tuple[str, str]]:
        return []


def test_a_reader_set_after_start_up_is_consulted_and_none_means_no_override_path() -> None:
    """Requests opened without a reader skip override reading; one set later (as the first
    request's debug mode does) is read once per request, at the first flag read."""
    runtime = Runtime(FLAGS, Options(debug=False))  # no secret: overrides off
    f = runtime.open({}, WSGIView)
    assert f.read_overrides() is None
    f.decision("split")
    assert f.decision("split").reason.name == "SPLIT"

    reader = _Forcing()
    runtime.overrides = reader
    f = runtime.open({}, WSGIView)
    assert f.decision("split").reason.name == "OVERRIDE"
    f.enabled("split")
    assert reader.reads == 1
    assert f.read_overrides() is not None

    runtime.overrides = None
    f = runtime.open({}, WSGIView)
    assert f.decision("split").reason.name == "SPLIT"
    assert reader.reads == 1


class _Failing:
    """A source that serves at start-up and then raises on every read."""

    def __init__(self) -> None:
        import rampup

        self._snapshot = rampup.load(FLAGS)
        self.reads = 0

    @property
    def snapshot(self) -> Any:
        self.reads += 1
        if self.reads > 1:
            raise OSError("the flag store is down")
        return self._snapshot


def test_a_failing_source_is_logged_once_and_every_request_is_served_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each request over a failing source gets Flags where every flag is off and identify()
    works; the failure is logged at ERROR once per middleware, not once per request."""
    import logging

    runtime = Runtime(_Failing(), Options(debug=False))
    with caplog.at_level(logging.DEBUG, logger="rampup"):
        opened = [runtime.open({}, WSGIView) for _ in range(3)]
    for f in opened:
        assert f.identify("user-1") is True
        assert f.enabled("split") is False
        assert f.subject.key == "user-1"
        assert runtime.headers(f) is None
    # the lifecycle's error once; the engine's "no flags are served" line is once per process
    # and reason, so it shows only if no earlier test read a flag of the fallback
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    opening = [r for r in errors if r.module == "lifecycle"]
    assert len(opening) == 1
    assert "could not open the request" in opening[0].getMessage()
    assert len(errors) - len(opening) <= 1
