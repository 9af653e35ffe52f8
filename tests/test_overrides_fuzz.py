"""Property-based fuzzing of override parsing and of the WSGI and ASGI middleware with them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rampup
from rampup._signing import baggage_value, derive_keys, sign, verify
from rampup.asgi import RampupMiddleware as ASGIMiddleware
from rampup.overrides import MAX_REPORT, read_values
from rampup.subject import parse_cookies
from rampup.types import Message, Receive, Scope, Send
from rampup.wsgi import RampupMiddleware as WSGIMiddleware

SECRET = "fuzz-secret-0123456789abcdef-0123456789"
KEYS = derive_keys(SECRET)
FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "new-checkout": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        "admin": {"default": "off", "overridable": False},
        "legacy": {"killed": True},
    },
}
SNAP = rampup.load(FLAGS)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=300)
names = st.sampled_from(["new-checkout", "button", "admin", "legacy", "nope", "a.b:c", "", "é"])
variants = st.sampled_from(["on", "off", "blue", "green", "red", "", "x y", "\x00"])
entries = st.builds(
    lambda f, v, sep: f"{f}{sep}{v}", names, variants, st.sampled_from(["=", " = ", ""])
)
plain_lists = st.lists(entries, max_size=8).map(", ".join)
tokens = st.builds(
    lambda spec, ttl, subject, secret: sign(spec, int(time.time()) + ttl, secret, subject),
    plain_lists,
    st.integers(-100, 100),
    st.one_of(st.none(), st.just("qa-1")),
    st.sampled_from([SECRET, "other-secret"]),
)
mutated = st.builds(
    lambda t, i, c: t[: i % (len(t) + 1)] + c + t[i % (len(t) + 1) + 1 :],
    tokens,
    st.integers(0, 500),
    st.characters(max_codepoint=255),
)
values = st.one_of(
    latin1,
    plain_lists,
    tokens,
    mutated,
    st.lists(st.one_of(tokens, entries), max_size=4).map(",".join),
)


def assert_safe_report(text: str) -> None:
    """A report is short, ASCII, printable: safe as a header value."""
    assert len(text) <= MAX_REPORT
    assert text.isascii()
    assert text.isprintable()


# -- parsers ---------------------------------------------------------------------------------
@FUZZ
@given(header=values, cookie=values, baggage=values, allow=st.booleans())
def test_read_values_never_raises_and_serves_only_allowed(
    header: str, cookie: str, baggage: str, allow: bool
) -> None:
    """Whatever the input, only allowed overrides are served, each once, with a safe report."""
    state = read_values(
        [(header, "header"), (cookie, "cookie"), (baggage, "baggage")],
        SNAP,
        KEYS,
        allow_unsigned=allow,
        subject="qa-1",
    )
    for flag, variant in state.served.items():
        assert SNAP.override_refusal(flag, variant) is None
    served = [o for o in state.outcomes if o.reason is None]
    assert len(served) == len(state.served)
    if not allow:
        assert all(o.signed for o in served)
    assert_safe_report(state.report())


@FUZZ
@given(header=latin1)
def test_cookie_and_baggage_parsers_never_raise(header: str) -> None:
    """The cookie and baggage parsers take any header text."""
    parse_cookies(header)
    value, why = baggage_value(header)
    assert value is None or why is None


@FUZZ
@given(spec=plain_lists, index=st.integers(0, 400), char=st.characters(max_codepoint=255))
def test_any_change_to_a_token_is_refused(spec: str, index: int, char: str) -> None:
    """Changing any one character of a valid token makes it fail verification."""
    tok = sign(spec, int(time.time()) + 3600, SECRET)
    i = index % len(tok)
    changed = tok[:i] + char + tok[i + 1 :]
    got, why = verify(changed, KEYS, time.time())
    if changed == tok:
        assert got is not None
    else:
        assert got is None
        assert why


# -- whole middleware ------------------------------------------------------------------------
CONFIGS: list[dict[str, Any]] = [
    {"override_secret": SECRET},
    {"override_secret": SECRET, "debug": True, "override_query_param": "qa"},
    {"overrides": "open", "debug": True, "override_baggage": True, "override_query_param": "qa"},
    {
        "overrides": "signed",
        "override_secret": (SECRET, "old-fuzz-secret-0123456789abcdef-0123"),
        "override_baggage": True,
    },
]
WSGI_APPS: list[WSGIMiddleware] = []
ASGI_APPS: list[ASGIMiddleware] = []


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    f = rampup.flags
    body = ",".join(f"{k}={f.variant(k)}" for k in FLAGS["flags"])
    start_response("299 Fuzzed", [("Content-Type", "text/plain")])
    return [body.encode()]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    f = rampup.flags
    body = ",".join(f"{k}={f.variant(k)}" for k in FLAGS["flags"])
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


for _options in CONFIGS:
    WSGI_APPS.append(WSGIMiddleware(wsgi_app, FLAGS, **_options))
    ASGI_APPS.append(ASGIMiddleware(asgi_app, FLAGS, **_options))


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def no_logged_errors() -> Iterator[None]:
    """Fail if rampup logged an error: the middleware contains its own failures, so a bug in
    override parsing would otherwise pass unseen."""
    handler = _Errors()
    logger = logging.getLogger("rampup")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == []


def check_added_headers(headers: list[tuple[str, str]]) -> None:
    for name, value in headers:
        value.encode("latin-1")
        assert "\r" not in value
        assert "\n" not in value
        if name.lower() == "x-rampup-overrides":
            assert_safe_report(value)


@FUZZ
@given(
    which=st.integers(0, len(CONFIGS) - 1),
    header=values,
    cookie=st.one_of(latin1, values.map(lambda v: f"a=b; rampup_override={v}; c=d")),
    baggage=st.one_of(latin1, values.map(lambda v: f"k=v,rampup.override={v};p")),
    query=st.one_of(latin1, values.map(lambda v: f"qa={v}")),
    read=st.booleans(),
)
def test_wsgi_middleware_survives_any_input(
    which: int, header: str, cookie: str, baggage: str, query: str, read: bool
) -> None:
    """Arbitrary override header, cookie, baggage and query bytes: no exception escapes, the
    status is the app's own, and added headers are well formed."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "wsgi.url_scheme": "https",
        "HTTP_X_RAMPUP_OVERRIDE": header,
        "HTTP_COOKIE": cookie,
        "HTTP_BAGGAGE": baggage,
    }
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append((status, headers))

    app = (
        WSGI_APPS[which]
        if read
        else WSGIMiddleware(
            lambda e, s: [s("299 Fuzzed", []) or b""], runtime=WSGI_APPS[which].runtime
        )
    )
    with no_logged_errors():
        body = app(environ, start_response)
        data = b"".join(body)
        getattr(body, "close", lambda: None)()
    assert [status for status, _ in seen] == ["299 Fuzzed"]
    check_added_headers(seen[0][1])
    if read:
        assert data.count(b"=") == len(FLAGS["flags"])


@FUZZ
@given(
    which=st.integers(0, len(CONFIGS) - 1),
    raw=st.lists(
        st.tuples(
            st.sampled_from([b"x-rampup-override", b"cookie", b"baggage", b"X-Rampup-Override"]),
            st.binary(max_size=300) | values.map(lambda v: v.encode("utf-8", "replace")),
        ),
        max_size=5,
    ),
    query=st.binary(max_size=200),
)
def test_asgi_middleware_survives_any_input(
    which: int, raw: list[tuple[bytes, bytes]], query: bytes
) -> None:
    """Arbitrary header bytes through the ASGI middleware: no exception, the app's status."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "root_path": "",
        "query_string": query,
        "headers": raw,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    with no_logged_errors():
        asyncio.run(ASGI_APPS[which](scope, receive, send))
    assert sent[0]["status"] == 299
    added = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in sent[0]["headers"]]
    check_added_headers(added)
    assert sent[1]["body"].count(b"=") == len(FLAGS["flags"])
