"""The request plumbing every adapter shares (rampup._request): settings and subjects."""

from __future__ import annotations

from typing import Any

import pytest

from rampup._request import Runtime, Settings
from rampup.wsgi import WSGIView

FLAGS = {"flags": {"split": {"rules": [{"split": {"on": 50, "off": 50}}]}}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cookie_samesite": "Laxx"}, "cookie_samesite='Laxx'"),
        ({"overrides": "signd"}, "overrides='signd'"),
        ({"user": "myapp.current_user"}, "must be a callable"),
        ({"user_headr": "X-User-Id"}, "unknown options 'user_headr'"),
    ],
)
def test_bad_settings_fail_at_start_up(options: dict[str, Any], message: str) -> None:
    """A misspelt option or value is a ValueError when the middleware is built, naming it."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Settings.from_options(options)


def test_identify_after_reading_the_subject_sets_no_anonymous_cookie() -> None:
    """Reading .subject mints an anonymous id; identify() replaces the subject, so that id is
    never used and no cookie is set for it."""
    runtime = Runtime(FLAGS, Settings())
    f = runtime.open({}, WSGIView)
    assert f.subject.key == f.minted
    assert f.identify("user-7")
    f.decision("split")
    assert f.subject.key == "user-7"
    assert runtime.response_headers(f) == []


def test_anonymous_cookie_is_set_when_a_split_used_the_minted_id() -> None:
    """The control: without identify(), the minted id used by a split is set as a cookie."""
    runtime = Runtime(FLAGS, Settings(cookie_samesite="Strict"))
    f = runtime.open({"wsgi.url_scheme": "https"}, WSGIView)
    f.decision("split")
    [(name, value)] = runtime.response_headers(f)
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


def test_a_malformed_id_cookie_is_replaced_with_a_reason_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rampup_id that rampup could not have minted is not trusted: a new id is minted,
    and the debug log says why (without echoing the untrusted value)."""
    caplog.set_level("DEBUG", logger="rampup")
    runtime = Runtime(FLAGS, Settings())
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
    runtime = Runtime(FLAGS, Settings(user_header="X-User-Id", user_cookie="uid"))
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
    """Requests opened without a reader skip override reading; one given later (as
    learn_debug does) is read once per request, at the first flag read."""
    runtime = Runtime(FLAGS, Settings(), None)
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
