"""The plain ASGI middleware, through httpx's ASGI transport and direct ASGI calls."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

pytest.importorskip("httpx")

import httpx

import rampup
from rampup.asgi import SCOPE_KEY, ASGIView, RampupMiddleware
from rampup.subject import RequestAttributes, find_cookie
from rampup.types import ASGIApp, Message, Receive, Scope, Send

FLAGS = {
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "plain": {"default": "on"},
    }
}
ANON = re.compile(r"^rampup_id=([0-9a-f]{32}); ")


def reader(*keys: str, status: int = 200) -> ASGIApp:
    """An ASGI app reading ``keys`` through ``rampup.flags`` and answering with the subject."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        values = {}
        for key in keys:
            values[key] = rampup.flags.variant(key)
            await asyncio.sleep(0)
        body = {"key": rampup.flags.subject.key if keys else None, "variants": values}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


def get(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    base_url: str = "http://testserver",
    **kwargs: Any,
) -> Any:
    """One request through httpx's ASGI transport."""

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def make_scope(path: str = "/", headers: dict[str, str] | None = None, **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    scope.update(extra)
    return scope


def call(app: ASGIApp, scope: Scope) -> list[Message]:
    """Drive ``app`` directly; return every message it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)

    asyncio.run(run())
    return sent


def anon_cookies(headers: Any) -> list[str]:
    if isinstance(headers, list):  # raw ASGI headers
        values = [v.decode() for k, v in headers if k == b"set-cookie"]
    else:
        values = headers.get_list("set-cookie")
    return [c for c in values if c.startswith("rampup_id=")]


def test_flags_in_scope_state_and_proxy_are_the_same_object() -> None:
    """scope["rampup.flags"], scope["state"]["flags"] and rampup.flags are one Flags."""
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend([scope[SCOPE_KEY], scope["state"]["flags"], rampup.context.current()])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    call(RampupMiddleware(app, flags=FLAGS), make_scope(state={"from": "lifespan"}))
    assert isinstance(seen[0], rampup.Flags)
    assert seen[0] is seen[1] is seen[2]
    assert not rampup.flags.bound


def test_cookie_is_secure_on_https() -> None:
    """On an https request the id cookie carries Secure."""
    resp = get(RampupMiddleware(reader("split"), flags=FLAGS), base_url="https://testserver")
    (cookie,) = anon_cookies(resp.headers)
    assert cookie.endswith("; Secure")


def test_valid_cookie_reused_and_bad_ones_replaced() -> None:
    """A valid id is kept (no new cookie); a malformed or oversized one is replaced."""
    app = RampupMiddleware(reader("split"), flags=FLAGS)
    good = "0123456789abcdef0123456789abcdef"
    resp = get(app, headers={"Cookie": f"rampup_id={good}"})
    assert resp.json()["key"] == good
    assert anon_cookies(resp.headers) == []
    for bad in ["zzz", good.upper(), good + "0", "a" * 4000, '"; Path=/evil']:
        resp = get(app, headers={"Cookie": f"rampup_id={bad}"})
        assert resp.status_code == 200
        (cookie,) = anon_cookies(resp.headers)
        m = ANON.match(cookie)
        assert m is not None
        assert resp.json()["key"] == m.group(1) != bad


def test_user_id_sources_in_order() -> None:
    """The key comes from the header, else the cookie, else the callback given the scope."""
    scopes: list[Scope] = []

    def user(scope: Scope) -> dict[str, Any] | None:
        scopes.append(scope)
        return {"key": "from-callback", "plan": "pro"} if scope["path"] == "/cb" else None

    app = RampupMiddleware(
        reader("split"), flags=FLAGS, user_header="X-User-Id", user_cookie="uid", user=user
    )
    both = {"X-User-Id": "from-header", "Cookie": "uid=from-cookie"}
    assert get(app, headers=both).json()["key"] == "from-header"
    assert get(app, headers={"Cookie": "uid=from-cookie"}).json()["key"] == "from-cookie"
    assert scopes == []
    resp = get(app, "/cb")
    assert resp.json()["key"] == "from-callback"
    assert anon_cookies(resp.headers) == []
    resp = get(app, "/anon")
    assert re.fullmatch(r"[0-9a-f]{32}", resp.json()["key"])
    assert len(anon_cookies(resp.headers)) == 1
    assert [s["path"] for s in scopes] == ["/cb", "/anon"]


def test_app_exception_propagates_as_the_same_object() -> None:
    """Whatever the app raises reaches the server unchanged."""
    boom = KeyError("the app's own")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        rampup.flags.enabled("split")
        raise boom

    with pytest.raises(KeyError) as info:
        call(RampupMiddleware(app, flags=FLAGS), make_scope())
    assert info.value is boom


def test_streaming_cookie_on_first_message_and_body_untouched() -> None:
    """A streamed response streams: the cookie goes on http.response.start, body messages
    pass through as the very objects the app sent, and flags read between chunks."""
    sent_by_app: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        rampup.flags.variant("split")
        start = {"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]}
        await send(start)
        for i in range(3):
            await asyncio.sleep(0)
            msg = {
                "type": "http.response.body",
                "more_body": i < 2,
                "body": f"{i}:{rampup.flags.variant('plain')};".encode(),
            }
            sent_by_app.append(msg)
            await send(msg)

    got = call(RampupMiddleware(app, flags=FLAGS), make_scope())
    assert got[0]["type"] == "http.response.start"
    assert got[0]["headers"][0] == (b"x-app", b"1")
    assert len(anon_cookies(got[0]["headers"])) == 1
    assert got[1:] == sent_by_app
    assert all(a is b for a, b in zip(got[1:], sent_by_app, strict=True))
    assert b"".join(m["body"] for m in got[1:]) == b"0:on;1:on;2:on;"


def test_read_after_headers_sent_cannot_set_the_cookie() -> None:
    """A split first read after http.response.start cannot add the cookie (documented)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        variant = rampup.flags.variant("split") or ""
        await send({"type": "http.response.body", "body": variant.encode()})

    got = call(RampupMiddleware(app, flags=FLAGS), make_scope())
    assert got[1]["body"] in (b"on", b"off")
    assert anon_cookies(got[0]["headers"]) == []


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 304), ("GET", 307), ("POST", 500), ("GET", 404)]
)
def test_cookie_set_on_any_status_when_minted(method: str, status: int) -> None:
    """HEAD, 304, redirects and error statuses still carry a minted id."""
    resp = get(RampupMiddleware(reader("split", status=status), flags=FLAGS), method=method)
    assert resp.status_code == status
    assert len(anon_cookies(resp.headers)) == 1


def test_nested_middleware_is_a_no_op() -> None:
    """An inner rampup middleware sees the outer one's Flags and adds nothing."""
    inner = RampupMiddleware(reader("split"), flags=FLAGS)
    outer = RampupMiddleware(inner, flags=FLAGS)
    got = call(outer, make_scope())
    assert len(anon_cookies(got[0]["headers"])) == 1


@pytest.mark.parametrize("kind", ["lifespan"])
def test_other_scopes_pass_through_untouched(kind: str) -> None:
    """lifespan scopes reach the app as the same objects, with nothing added."""
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))
        assert not rampup.flags.bound

    scope: Scope = {"type": kind, "asgi": {"version": "3.0"}, "path": "/ws", "headers": []}
    before = dict(scope)

    async def receive() -> Message:
        return {"type": f"{kind}.connect"}

    async def send(message: Message) -> None:
        pass

    asyncio.run(RampupMiddleware(app, flags=FLAGS)(scope, receive, send))
    ((s, r, w),) = seen
    assert s is scope
    assert scope == before
    assert r is receive
    assert w is send


def test_unencodable_cookie_setting_never_breaks_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cookie domain that cannot go in a header drops rampup's header, not the response."""
    resp = get(RampupMiddleware(reader("split"), flags=FLAGS, cookie_domain="例え.jp"))
    assert resp.status_code == 200
    assert anon_cookies(resp.headers) == []
    assert "not latin-1" in caplog.text


def test_listener_hears_status_and_errors() -> None:
    """Listeners get the response status, or the app's exception."""
    ends: list[tuple[int | None, BaseException | None]] = []

    class Ends:
        def on_decision(self, flags: Any, decision: Any) -> None:
            pass

        def on_request_end(
            self, flags: Any, status: int | None, error: BaseException | None
        ) -> None:
            ends.append((status, error))

    call(
        RampupMiddleware(reader("plain", status=418), flags=FLAGS, listeners=[Ends()]), make_scope()
    )
    assert ends == [(418, None)]


def test_view_path_with_and_without_root_path_in_path() -> None:
    """The path attribute includes the mount point once, whichever convention the server uses."""
    assert ASGIView(make_scope("/api/items", root_path="/api")).path == "/api/items"
    assert ASGIView(make_scope("/items", root_path="/api")).path == "/api/items"
    assert ASGIView(make_scope("/items")).path == "/items"


def test_view_reads_headers_cookies_query_lazily() -> None:
    """Headers, repeated headers, cookies, query and client come from the scope."""
    scope = make_scope("/p", {"X-A": "1", "Cookie": "a=1; b=2"}, query_string=b"q=x&r=y")
    scope["headers"].append((b"x-a", b"2"))
    view = ASGIView(scope)
    assert view.header("x-a") == "1, 2"
    assert view.cookie("b") == "2"
    assert view.query("r") == "y"
    assert (view.method, view.scheme, view.client_ip) == ("GET", "http", "127.0.0.1")


def test_view_header_lookups_agree_with_a_scan() -> None:
    """The one-pass header index gives what scanning the raw list gives: unique names, two
    Cookie headers (HTTP/2), oversized values, names in any case, headers as a tuple of
    lists, and no headers at all."""
    big = b"v" * (8 * 1024 + 1)
    cases: list[Any] = [
        [(b"x-a", b"1"), (b"cookie", b"a=1"), (b"x-big", big)],
        [(b"cookie", b"a=1"), (b"x-a", b"1"), (b"cookie", b"b=2")],
        ([b"x-a", b"1"], [b"x-b", b"2"]),
        [],
    ]
    for headers in cases:
        view = ASGIView({"type": "http", "headers": headers})
        for name in ("x-a", "X-A", "x-b", "x-big", "missing"):
            found = [
                v.decode("latin-1")
                for k, v in headers
                if k == name.lower().encode() and len(v) <= 8192
            ]
            assert view.header(name) == (", ".join(found) or None)
            # what conditions read: the same value through .get's header fast path
            assert RequestAttributes(view).get(f"header.{name}", "D") == (", ".join(found) or "D")
        cookies = "; ".join(v.decode() for k, v in headers if k == b"cookie")
        for cookie in ("a", "b", "c"):
            assert view.cookie(cookie) == find_cookie(cookies, cookie)
