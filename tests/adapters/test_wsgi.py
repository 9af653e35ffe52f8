"""The plain WSGI middleware, through werkzeug's test client and direct WSGI calls."""

from __future__ import annotations

import json
import re
import wsgiref.util
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

pytest.importorskip("werkzeug")

from werkzeug.test import Client

import rampup
from rampup.subject import RequestAttributes
from rampup.wsgi import ENVIRON_KEY, RampupMiddleware, WSGIView, flags_of

FLAGS = {
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "plain": {"default": "on"},
    }
}
ANON = re.compile(r"^rampup_id=([0-9a-f]{32}); ")
StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def reader(*keys: str, status: str = "200 OK") -> App:
    """A WSGI app reading ``keys`` through ``rampup.flags`` and answering with the subject."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        values = {key: rampup.flags.variant(key) for key in keys}
        body = {"key": rampup.flags.subject.key if keys else None, "variants": values}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return app


def js(resp: Any) -> dict[str, Any]:
    body = resp.json
    assert isinstance(body, dict)
    return body


def anon_cookies(resp: Any) -> list[str]:
    return [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("rampup_id=")]


def environ_for(path: str = "/", **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"PATH_INFO": path, **extra}
    wsgiref.util.setup_testing_defaults(env)
    return env


def test_flags_in_environ_and_proxy_are_the_same_object() -> None:
    """environ["rampup.flags"] is the request's Flags, the one rampup.flags reads."""
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ[ENVIRON_KEY])
        seen.append(rampup.context.current())
        start_response("200 OK", [])
        return [b"ok"]

    Client(RampupMiddleware(app, flags=FLAGS)).get("/")
    assert isinstance(seen[0], rampup.Flags)
    assert seen[0] is seen[1]


def test_cookie_minted_when_a_split_was_read_with_secure_defaults() -> None:
    """Reading a split mints a 128-bit id, set HttpOnly, SameSite=Lax, long Max-Age, Path=/."""
    resp = Client(RampupMiddleware(reader("split"), flags=FLAGS)).get("/")
    (cookie,) = anon_cookies(resp)
    m = ANON.match(cookie)
    assert m is not None
    assert m.group(1) == js(resp)["key"]
    attrs = cookie.split("; ")[1:]
    assert set(attrs) == {"Path=/", f"Max-Age={2 * 365 * 24 * 3600}", "HttpOnly", "SameSite=Lax"}


def test_cookie_is_secure_on_https_and_configurable() -> None:
    """On https the cookie is Secure; name, path and domain follow the options."""
    app = RampupMiddleware(
        reader("split"),
        flags=FLAGS,
        cookie_name="vid",
        cookie_path="/shop",
        cookie_domain="example.com",
        cookie_max_age=60,
    )
    resp = Client(app).get("/", base_url="https://localhost")
    (cookie,) = resp.headers.getlist("Set-Cookie")
    name, _, rest = cookie.partition("=")
    assert name == "vid"
    attrs = set(rest.split("; ")[1:])
    assert attrs == {
        "Path=/shop",
        "Max-Age=60",
        "HttpOnly",
        "SameSite=Lax",
        "Domain=example.com",
        "Secure",
    }


def test_valid_cookie_is_reused() -> None:
    """A visitor who has an id keeps it: same subject key, no new Set-Cookie."""
    client = Client(RampupMiddleware(reader("split"), flags=FLAGS))
    first = client.get("/")
    second = client.get("/")  # the client's jar sends the cookie back
    assert anon_cookies(second) == []
    assert js(second) == js(first)


@pytest.mark.parametrize(
    "bad", ["not-an-id", "ABCDEF0123456789ABCDEF0123456789", "0" * 31, "a" * 5000, "%00" * 16]
)
def test_malformed_or_oversized_cookie_is_replaced(bad: str) -> None:
    """An id rampup could not have minted is never trusted: a fresh one replaces it."""
    client = Client(RampupMiddleware(reader("split"), flags=FLAGS), use_cookies=False)
    resp = client.get("/", headers={"Cookie": f"rampup_id={bad}"})
    assert resp.status_code == 200
    (cookie,) = anon_cookies(resp)
    minted = ANON.match(cookie)
    assert minted is not None
    assert js(resp)["key"] == minted.group(1) != bad


def test_user_id_sources_in_order_header_cookie_callback() -> None:
    """The user key comes from the header, else the cookie, else the callback, else anonymous."""
    calls: list[dict[str, Any]] = []

    def user(environ: dict[str, Any]) -> str | None:
        calls.append(environ)
        return environ.get("HTTP_X_CALLBACK_USER")

    app = RampupMiddleware(
        reader("split"), flags=FLAGS, user_header="X-User-Id", user_cookie="uid", user=user
    )
    client = Client(app, use_cookies=False)
    every = {"X-User-Id": "from-header", "Cookie": "uid=from-cookie", "X-Callback-User": "cb"}
    assert js(client.get("/", headers=every))["key"] == "from-header"
    del every["X-User-Id"]
    assert js(client.get("/", headers=every))["key"] == "from-cookie"
    assert calls == []  # the callback only runs when the header and cookie gave nothing
    del every["Cookie"]
    resp = client.get("/", headers=every)
    assert js(resp)["key"] == "cb"
    assert anon_cookies(resp) == []
    resp = client.get("/")
    assert anon_cookies(resp) != []
    assert len(calls) == 2
    assert calls[0]["PATH_INFO"] == "/"


def test_app_exception_propagates_unchanged() -> None:
    """The app's exception reaches the caller as the same object, and unbinds the context."""
    boom = LookupError("the app's own")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rampup.flags.enabled("split")
        raise boom

    client = Client(RampupMiddleware(app, flags=FLAGS))
    with pytest.raises(LookupError) as info:
        client.get("/")
    assert info.value is boom
    assert not rampup.flags.bound


class Ends:
    """A listener recording each request's end."""

    def __init__(self) -> None:
        self.ends: list[tuple[int | None, BaseException | None]] = []

    def on_decision(self, flags: rampup.Flags, decision: rampup.Decision) -> None:
        pass

    def on_request_end(self, flags: Any, status: int | None, error: BaseException | None) -> None:
        self.ends.append((status, error))


def streaming_app(events: list[str]) -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                for i in range(3):
                    events.append(f"chunk {i}")
                    yield f"{i}:{rampup.flags.variant('plain')};".encode()
            finally:
                events.append(f"app closed, flags {rampup.flags.variant('plain')}")

        return body()

    return app


def test_streaming_body_reads_flags_and_ends_at_exhaustion() -> None:
    """A streamed body reads flags while it is produced; the request ends once, when done."""
    events: list[str] = []
    ends = Ends()
    mw = RampupMiddleware(streaming_app(events), flags=FLAGS, listeners=[ends])
    statuses: list[str] = []
    body = mw(environ_for(), lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert events == []  # nothing was produced before the server asked for it
    assert not rampup.flags.bound  # nothing leaks out of __call__, whatever the server does
    chunks = iter(body)
    assert next(chunks) == b"0:on;"
    assert not rampup.flags.bound
    assert ends.ends == []
    assert b"".join(chunks) == b"1:on;2:on;"
    assert events[-1] == "app closed, flags on"
    assert ends.ends == [(200, None)]
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]  # closing again is harmless
    assert ends.ends == [(200, None)]
    assert not rampup.flags.bound


def test_closing_a_half_sent_body_runs_app_cleanup_with_flags() -> None:
    """When the client goes away mid-stream, the app's cleanup still sees the request's flags."""
    events: list[str] = []
    ends = Ends()
    mw = RampupMiddleware(streaming_app(events), flags=FLAGS, listeners=[ends])
    body = mw(environ_for(), lambda status, headers, exc_info=None: None)
    assert next(iter(body)) == b"0:on;"
    body.close()  # type: ignore[attr-defined]
    assert events == ["chunk 0", "app closed, flags on"]
    assert ends.ends == [(200, None)]
    assert not rampup.flags.bound


def test_error_while_streaming_propagates_and_is_reported() -> None:
    """An exception raised while the body is produced reaches the server unchanged."""
    boom = OSError("disk gone mid-stream")
    ends = Ends()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise boom

    body = RampupMiddleware(app, flags=FLAGS, listeners=[ends])(
        environ_for(), lambda status, headers, exc_info=None: None
    )
    chunks = iter(body)
    assert next(chunks) == b"first"
    with pytest.raises(OSError) as info:
        next(chunks)
    assert info.value is boom
    assert ends.ends == [(200, boom)]
    assert not rampup.flags.bound


def test_streaming_through_the_client() -> None:
    """werkzeug's client gets every chunk of a streamed body."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return (rampup.flags.variant("plain").encode() for _ in range(3))  # type: ignore[union-attr]

    resp = Client(RampupMiddleware(app, flags=FLAGS)).get("/", buffered=False)
    assert list(resp.response) == [b"on", b"on", b"on"]
    resp.close()


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("HEAD", "200 OK"),
        ("GET", "304 Not Modified"),
        ("GET", "302 Found"),
        ("POST", "500 Internal Server Error"),
        ("GET", "404 Not Found"),
    ],
)
def test_cookie_set_on_any_status_when_minted(method: str, status: str) -> None:
    """HEAD, 304, redirects and error responses still carry a minted id."""
    resp = Client(RampupMiddleware(reader("split", status=status), flags=FLAGS)).open(
        "/", method=method
    )
    assert resp.status == status
    assert len(anon_cookies(resp)) == 1


def test_read_after_start_response_cannot_set_the_cookie() -> None:
    """A split first read after the headers went out cannot add the cookie (documented)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        yield rampup.flags.variant("split").encode()  # type: ignore[union-attr]

    resp = Client(RampupMiddleware(app, flags=FLAGS)).get("/")
    assert resp.get_data() in (b"on", b"off")
    assert anon_cookies(resp) == []


def test_nested_middleware_is_a_no_op() -> None:
    """A second rampup middleware inside the first changes nothing: one Flags, one cookie."""
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ[ENVIRON_KEY])
        rampup.flags.variant("split")
        start_response("200 OK", [])
        return [b"ok"]

    outer = RampupMiddleware(RampupMiddleware(app, flags=FLAGS), flags=FLAGS)
    resp = Client(outer).get("/")
    assert len(anon_cookies(resp)) == 1
    (f,) = seen
    assert isinstance(f, rampup.Flags)
    assert flags_of({ENVIRON_KEY: f}) is f
    assert getattr(f, "runtime", None) is outer.runtime


def test_anonymous_id_validation_is_exact() -> None:
    """Only exactly 32 lowercase hex digits pass as an id; a trailing newline does not."""
    from rampup.subject import mint_anonymous_id, valid_anonymous_id

    assert valid_anonymous_id(mint_anonymous_id())
    for bad in [None, "", "a" * 32 + "\n", "a" * 33, "A" * 32, " " + "a" * 32]:
        assert not valid_anonymous_id(bad)


@pytest.mark.performance
def test_lists_and_server_file_wrappers_are_handed_over_as_is(tmp_path: Any) -> None:
    """A list body (no app code runs while it is sent: no wrapper needed), or the server's
    wsgi.file_wrapper (which the server recognises to sendfile), reaches the server unwrapped."""
    from wsgiref.util import FileWrapper

    path = tmp_path / "f.txt"
    path.write_bytes(b"file body")
    listed = [b"listed"]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/file":
            return environ["wsgi.file_wrapper"](path.open("rb"))  # type: ignore[no-any-return]
        return listed

    mw = RampupMiddleware(app, flags=FLAGS)
    noop = lambda status, headers, exc_info=None: None  # noqa: E731
    assert mw(environ_for("/list"), noop) is listed
    body = mw(environ_for("/file", **{"wsgi.file_wrapper": FileWrapper}), noop)
    assert isinstance(body, FileWrapper)
    assert b"".join(body) == b"file body"
    body.close()


def test_view_attributes_come_from_the_environ_as_the_generic_lookup_gives_them() -> None:
    """WSGIView.get takes header.<name> straight from the environ; for every kind of name it
    gives what the generic lookup through .header/.cookie gives, oversized values included."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/p",
        "HTTP_HOST": "h.example",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.url_scheme": "https",
        "HTTP_X_COLOR": "blue",
        "CONTENT_TYPE": "text/plain",
        "HTTP_X_BIG": "y" * 9000,
        "HTTP_COOKIE": "a=1",
    }
    view = WSGIView(environ)
    assert (
        RequestAttributes(view).get("header.x-color")
        == RequestAttributes(view)["header.x-color"]
        == "blue"
    )
    assert RequestAttributes(view).get("header.content-type") == "text/plain"
    assert RequestAttributes(view).get("header.x-big", "D") == "D"
    assert RequestAttributes(view).get("header.x-missing") is None
