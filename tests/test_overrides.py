"""QA overrides: parsing, signing, verifying, policy, the report, the CLI (``rampup sign``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rampup
from rampup import Reason, Subject
from rampup._request import Runtime, Settings
from rampup._signing import (
    MAX_ENTRIES,
    MAX_TTL,
    MAX_VALUE,
    baggage_value,
    derive_keys,
    parse_entry,
    sign,
    verify,
)
from rampup.cli.sign import parse_spec, parse_ttl
from rampup.context import Flags
from rampup.overrides import (
    MAX_REPORT,
    OverrideReader,
    explain_override,
    read_values,
    reader_for,
)
from rampup.wsgi import RampupMiddleware, WSGIView

SECRET = "qa-secret-0123456789abcdef-0123456789"
OLD = "old-secret-0123456789abcdef-0123456789"
NOW = 1_800_000_000.0
KEYS = derive_keys(SECRET)

FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "new-checkout": {
            "default": "off",
            "rules": [
                {"conditions": [{"attribute": "key", "op": "in", "value": ["qa-1"]}], "serve": "on"}
            ],
        },
        "button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        "admin": {"default": "off", "overridable": False},
        "legacy": {"killed": True, "rules": [{"split": {"on": 50, "off": 50}}]},
    },
}
SNAP = rampup.load(FLAGS)


def token(spec: str, ttl: float = 60, secret: str = SECRET, subject: str | None = None) -> str:
    """A token for ``spec`` valid ``ttl`` seconds after NOW."""
    return sign(spec, int(NOW + ttl), secret, subject)


def reasons(state: Any) -> dict[str, str | None]:
    """text -> reason of every outcome of a state."""
    return {o.text: o.reason for o in state.outcomes}


# -- entries and values ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("new-checkout=on", ("new-checkout", "on")),
        ("  button = green ", ("button", "green")),
        ("a.b:c=v_1.2-x", ("a.b:c", "v_1.2-x")),
        ("new-checkout", "malformed (expected flag=variant)"),
        ("=on", "malformed (expected flag=variant)"),
        ("flag=", "malformed (expected flag=variant)"),
        ("flag=a=b", "malformed (expected flag=variant)"),
        ("fl ag=on", "malformed (expected flag=variant)"),
        ("flag=\u00e9t\u00e9", "non-ASCII or control characters"),
        ("flag=o\x00n", "non-ASCII or control characters"),
        ("flag=on\r\nX-Evil: 1", "non-ASCII or control characters"),
    ],
)
def test_parse_entry(item: str, expected: Any) -> None:
    """An entry is flag=variant in the flag file's own grammar; anything else has a reason."""
    assert parse_entry(item) == expected


def test_plain_entries_served_in_order_and_bad_ones_refused_with_reasons() -> None:
    """Unknown flags, unknown variants, killed and non-overridable flags are each refused."""
    state = read_values(
        [("new-checkout=on, button=red, admin=on, legacy=on, nope=on", "header")],
        SNAP,
        allow_unsigned=True,
        now=NOW,
    )
    assert dict(state.served) == {"new-checkout": "on"}
    got = reasons(state)
    assert got["new-checkout=on"] is None
    assert got["button=red"] == "unknown variant (expected one of: blue, green)"
    assert got["admin=on"] == "flag is not overridable"
    assert got["legacy=on"] == "flag is killed (the kill switch wins over overrides)"
    assert got["nope=on"] == "unknown flag"
    assert state.authorized is False


def test_first_mention_wins_and_duplicates_are_refused() -> None:
    """Within a value and across sources, the first mention of a flag wins; later ones are
    refused as duplicates (even when the first one was itself refused)."""
    state = read_values(
        [
            ("button=red, button=green", "header"),
            ("new-checkout=on", "header"),
            ("new-checkout=off, button=blue", "cookie"),
        ],
        SNAP,
        allow_unsigned=True,
        now=NOW,
    )
    assert dict(state.served) == {"new-checkout": "on"}
    texts = [(o.text, o.source, o.reason) for o in state.outcomes]
    assert ("button=green", "header", "duplicate (button already set by header)") in texts
    assert ("new-checkout=off", "cookie", "duplicate (new-checkout already set by header)") in texts
    assert ("button=blue", "cookie", "duplicate (button already set by header)") in texts


def test_unsigned_refused_when_signatures_are_required() -> None:
    """Without allow_unsigned, plain entries are refused and do not claim the flag."""
    signed = token("button=green")
    state = read_values([("button=blue", "header"), (signed, "cookie")], SNAP, KEYS, now=NOW)
    assert dict(state.served) == {"button": "green"}
    assert str(reasons(state)["button=blue"]).startswith("unsigned")
    assert state.authorized is True


def test_caps_on_size_and_entries() -> None:
    """A value over 4 KB is refused whole; entries past the 50th are refused together."""
    big = "button=green," + "x" * MAX_VALUE
    state = read_values([(big, "header")], SNAP, allow_unsigned=True, now=NOW)
    assert not state.served
    assert [o.reason for o in state.outcomes] == [f"too long ({len(big)} chars; max {MAX_VALUE})"]

    many = ",".join(f"f{i}=on" for i in range(MAX_ENTRIES + 950)) + ",button=green"
    state = read_values([(many[:MAX_VALUE], "header")], SNAP, allow_unsigned=True, now=NOW)
    assert not state.served  # button=green was past the cap
    assert sum(1 for o in state.outcomes if o.reason == "unknown flag") == MAX_ENTRIES
    assert any(o.reason == f"max {MAX_ENTRIES} per value" for o in state.outcomes)


def test_empty_items_are_skipped() -> None:
    """Stray commas and blanks are not entries."""
    state = read_values([(" , ,button=green,, ", "header")], SNAP, allow_unsigned=True, now=NOW)
    assert dict(state.served) == {"button": "green"}
    assert len(state.outcomes) == 1


# -- tokens ----------------------------------------------------------------------------------
def test_token_format_is_the_documented_one() -> None:
    """v1.<b64url(JSON payload)>.<b64url(HMAC-SHA256(derived key, "v1.<payload>"))>."""
    tok = token("button=green", subject="qa-1")
    version, body, mac = tok.split(".")
    assert version == "v1"
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload == {"e": int(NOW + 60), "o": "button=green", "s": "qa-1"}
    key = hmac.new(SECRET.encode(), b"rampup.override.v1", hashlib.sha256).digest()
    expected = hmac.new(key, f"v1.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == mac
    assert "=" not in tok
    assert "," not in tok


def test_verify_roundtrip_and_rotation() -> None:
    """A token verifies with its secret, and with a key list that still holds the old one."""
    tok = token("button=green", secret=OLD)
    got, why = verify(tok, derive_keys((SECRET, OLD)), NOW)
    assert why == ""
    assert got is not None
    assert (got.overrides, got.expires, got.subject) == ("button=green", int(NOW + 60), None)
    assert verify(tok, KEYS, NOW) == (
        None,
        "bad signature (tampered, or signed with a secret not configured here)",
    )


def test_raw_secret_is_not_the_key() -> None:
    """A mac made with the secret itself (not the derived key) is refused: a SECRET_KEY that
    also signs sessions cannot mint overrides by accident."""
    tok = token("button=green")
    body = tok.split(".")[1]
    raw = hmac.new(SECRET.encode(), f"v1.{body}".encode(), hashlib.sha256).digest()
    forged = f"v1.{body}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"
    assert verify(forged, KEYS, NOW)[0] is None


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "bad signature"),
        (lambda t: t.replace("v1.", "v1.x", 1), "bad signature"),
        (lambda t: "v2" + t[2:], "malformed token"),
        (lambda t: t + ".more", "malformed token"),
        (lambda t: t.rsplit(".", 1)[0], "malformed token"),
        (lambda t: t[:-3] + "!!!", "malformed token (broken base64)"),
        (lambda t: t[:-1], "malformed token (broken base64)"),
        (lambda t: "v1..", "malformed token (broken base64)"),
    ],
)
def test_tampered_or_broken_tokens_refused(mangle: Callable[[str], str], reason: str) -> None:
    """Any change to a token is refused, with a reason that says what is wrong."""
    got, why = verify(mangle(token("button=green")), KEYS, NOW)
    assert got is None
    assert why.startswith(reason)


def test_expired_token_refused() -> None:
    """A token past its expiry is refused and says how long ago it expired."""
    assert verify(token("button=green", ttl=-30), KEYS, NOW) == (None, "expired 30s ago")
    assert verify(token("button=green", ttl=0), KEYS, NOW) == (None, "expired 0s ago")


def test_no_secret_configured() -> None:
    """With no key, a token cannot be checked and says so."""
    assert verify(token("button=green"), (), NOW)[1].startswith("signed override, but no secret")


def test_signed_but_malformed_payload_refused() -> None:
    """A payload that is authentic but not what rampup writes is refused, not trusted."""
    key = KEYS[0]
    for payload in (b"[]", b'{"e": "soon", "o": "a=b"}', b'{"e": true, "o": "a=b"}', b"nope"):
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        mac = hmac.new(key, f"v1.{body}".encode(), hashlib.sha256).digest()
        tok = f"v1.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        assert verify(tok, KEYS, NOW) == (None, "malformed token payload")


def test_subject_binding() -> None:
    """A bound token serves only the subject it names; presented by another subject it is
    refused, and the report saying so is shown (the token is authentic)."""
    tok = token("button=green", subject="qa-1")
    mine = read_values([(tok, "header")], SNAP, KEYS, now=NOW, subject="qa-1")
    assert dict(mine.served) == {"button": "green"}
    assert mine.authorized is True
    other = read_values([(tok, "header")], SNAP, KEYS, now=NOW, subject="someone")
    assert not other.served
    assert other.authorized is True
    assert [o.reason for o in other.outcomes] == ["bound to another subject"]


def test_token_and_plain_entries_share_one_value() -> None:
    """Tokens and entries may be mixed in one header; each is judged on its own."""
    value = f"{token('new-checkout=on')}, button=green"
    state = read_values([(value, "header")], SNAP, KEYS, now=NOW)
    assert dict(state.served) == {"new-checkout": "on"}
    assert [(o.text, o.signed, o.reason is None) for o in state.outcomes] == [
        ("new-checkout=on", True, True),
        ("button=green", False, False),
    ]


def test_non_overridable_refused_even_when_signed() -> None:
    """overridable = false wins over a valid signature."""
    state = read_values([(token("admin=on"), "header")], SNAP, KEYS, now=NOW)
    assert not state.served
    assert reasons(state) == {"admin=on": "flag is not overridable"}
    assert state.authorized is True  # the tester is still shown why


# -- order: kill switch > override > rules ---------------------------------------------------
def test_precedence_kill_switch_then_override_then_rules() -> None:
    """A rule matching the subject loses to an override; a killed flag ignores overrides."""
    qa = Subject("qa-1")
    assert SNAP.evaluate("new-checkout", qa).reason is Reason.RULE_MATCH
    d = SNAP.evaluate("new-checkout", qa, override="off")
    assert (d.variant, d.reason) == ("off", Reason.OVERRIDE)
    killed = SNAP.evaluate("legacy", qa, override="on")
    assert (killed.variant, killed.reason) == ("off", Reason.KILLED)
    assert SNAP.evaluate("admin", qa, override="on").reason is Reason.DEFAULT


# -- baggage ---------------------------------------------------------------------------------
def test_baggage_member_found_decoded_and_capped() -> None:
    """The rampup.override member is found among others, properties dropped, %-decoded."""
    header = "userId=alice, rampup.override=button%3Dgreen%2Cnew-checkout%3Don;ttl=1, x=y"
    assert baggage_value(header) == ("button=green,new-checkout=on", None)
    assert baggage_value("userId=alice") == (None, None)
    assert baggage_value(None) == (None, None)
    huge = "rampup.override=a%3Db," + "k=v," * 3000
    value, why = baggage_value(huge)
    assert value is None
    assert why is not None
    assert why.startswith("baggage header too long")
    late = ",".join(f"k{i}=v" for i in range(200)) + ",rampup.override=button%3Dgreen"
    assert baggage_value(late) == (None, None)  # past the W3C limit of 180 members


# -- the report ------------------------------------------------------------------------------
def test_report_text_is_safe_and_capped() -> None:
    """The report is ASCII without control chars or separators from the input, and capped."""
    nasty = "x\r\nSet-Cookie: evil=1;\u00e9=on"
    state = read_values([(nasty, "header")], SNAP, allow_unsigned=True, now=NOW)
    text = state.report()
    assert text.isascii()
    assert text.isprintable()
    assert "\r" not in text
    assert "evil=1;" not in text
    many = ",".join(f"flag-{i:04d}-{'x' * 60}=on" for i in range(MAX_ENTRIES))
    values = [(many, "header"), (many, "cookie"), (many, "baggage")]
    report = read_values(values, SNAP, allow_unsigned=True, now=NOW).report()
    assert len(report) <= MAX_REPORT
    assert report.endswith("more")


def test_report_lines() -> None:
    """Served and refused items read as `served x=y (source)` / `refused x=y (source): why`."""
    state = read_values(
        [(f"{token('button=green')},admin=on", "header")],
        SNAP,
        KEYS,
        allow_unsigned=True,
        now=NOW,
    )
    assert state.report() == (
        "served button=green (header, signed); refused admin=on (header): flag is not overridable"
    )


# -- policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, None),
        ({"overrides": "off", "override_secret": SECRET, "debug": True}, None),
        ({"override_secret": SECRET}, (True, False)),
        ({"framework_secret": SECRET}, (True, False)),
        ({"override_secret": SECRET, "debug": True}, (True, True)),
        ({"debug": True}, (False, True)),
        ({"overrides": "signed", "override_secret": SECRET, "debug": True}, (True, False)),
        ({"overrides": "open", "debug": True}, (False, True)),
        ({"overrides": "open", "override_secret": (SECRET, OLD)}, (True, True)),
    ],
)
def test_policy_table(options: dict[str, Any], expected: tuple[bool, bool] | None) -> None:
    """(signed honoured, unsigned honoured) for each policy, secret and debug combination."""
    reader = reader_for(Settings.from_options(options))
    if expected is None:
        assert reader is None
    else:
        assert reader is not None
        assert (bool(reader.keys), reader.allow_unsigned) == expected


def test_override_secret_wins_over_framework_secret_and_rotates() -> None:
    """override_secret (several for rotation) is used instead of the framework's secret."""
    reader = reader_for(
        Settings.from_options({"override_secret": (SECRET, OLD), "framework_secret": "fw"})
    )
    assert reader is not None
    assert reader.keys == derive_keys((SECRET, OLD))


def test_signed_without_secret_is_a_configuration_error() -> None:
    """overrides='signed' with no secret fails at start-up with the fix in the message."""
    with pytest.raises(ValueError, match="override_secret"):
        reader_for(Settings.from_options({"overrides": "signed"}))


def test_open_outside_debug_warns_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    """overrides='open' in production logs a warning once, when the reader is built."""
    with caplog.at_level(logging.WARNING, logger="rampup"):
        reader_for(Settings.from_options({"overrides": "open"}))
    assert any("overrides='open' outside debug" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rampup"):
        reader_for(Settings.from_options({"overrides": "open", "debug": True}))
    assert not caplog.records


# -- through the generic WSGI middleware ------------------------------------------------------
def wsgi_get(
    app: Callable[..., Any], path: str = "/", query: str = "", **headers: str
) -> tuple[str, dict[str, list[str]], bytes]:
    """Call a WSGI app with HTTP_* headers; returns (status, headers, body)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"] = status
        seen["headers"] = hdrs

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    grouped: dict[str, list[str]] = {}
    for k, v in seen["headers"]:
        grouped.setdefault(k.lower(), []).append(v)
    return seen["status"], grouped, data


def flag_app(*keys: str) -> Callable[..., Any]:
    """A WSGI app answering `key=variant/REASON` for each key it reads."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        f = environ["rampup.flags"]
        text = " ".join(f"{k}={f.variant(k)}/{f.decision(k).reason.value}" for k in keys)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]

    return app


def test_report_header_rules_in_production() -> None:
    """In production the report goes only to a request carrying a valid signed override."""
    app = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    tok = sign("button=green", int(time.time()) + 3600, SECRET)
    _, headers, body = wsgi_get(app, x_rampup_override=tok)
    assert body == b"button=green/OVERRIDE"
    assert headers["x-rampup-overrides"] == ["served button=green (header, signed)"]
    _, headers, body = wsgi_get(app, x_rampup_override="button=green")
    assert body == b"button=blue/DEFAULT"
    assert "x-rampup-overrides" not in headers
    _, headers, _ = wsgi_get(app, x_rampup_override=tok[:-2] + "xx")
    assert "x-rampup-overrides" not in headers
    _, headers, _ = wsgi_get(app)
    assert "x-rampup-overrides" not in headers


def test_report_always_in_debug_even_if_no_flag_was_read() -> None:
    """In debug mode the report comes back whenever an override was sent, read or not."""
    app = RampupMiddleware(flag_app(), FLAGS, debug=True, override_report_header="X-QA")
    _, headers, _ = wsgi_get(app, x_rampup_override="button=green,admin=on")
    assert headers["x-qa"] == [
        "served button=green (header); refused admin=on (header): flag is not overridable"
    ]
    _, headers, _ = wsgi_get(app)
    assert "x-qa" not in headers


def test_cookie_and_custom_names() -> None:
    """The cookie works like the header; header and cookie names are configurable."""
    app = RampupMiddleware(
        flag_app("button", "new-checkout"),
        FLAGS,
        debug=True,
        override_header="X-QA-Force",
        override_cookie="qa",
    )
    _, _, body = wsgi_get(app, cookie="qa=button=green", x_qa_force="new-checkout=on")
    assert body == b"button=green/OVERRIDE new-checkout=on/OVERRIDE"
    _, _, body = wsgi_get(app, x_rampup_override="button=green")
    assert body == b"button=blue/DEFAULT new-checkout=off/DEFAULT"


def test_cookie_with_escaped_commas() -> None:
    """A cookie quoted by http.cookies or Werkzeug (commas as \\054) still reads."""
    app = RampupMiddleware(flag_app("button", "new-checkout"), FLAGS, debug=True)
    _, _, body = wsgi_get(app, cookie='rampup_override="button=green\\054new-checkout=on"')
    assert body == b"button=green/OVERRIDE new-checkout=on/OVERRIDE"


def test_query_param_sets_and_clears_the_cookie_without_reading_flags() -> None:
    """?qa=... sets the override cookie (even when the view reads no flag) and applies it to
    that request; ?qa= clears it; an unacceptable value plants nothing."""
    app = RampupMiddleware(flag_app(), FLAGS, override_secret=SECRET, override_query_param="qa")
    expires = int(time.time()) + 600
    tok = sign("button=green", expires, SECRET)
    before = time.time()
    _, headers, _ = wsgi_get(app, query=f"qa={tok}")
    after = time.time()
    (cookie,) = headers["set-cookie"]
    assert cookie.startswith(f"rampup_override={tok}; Max-Age=")
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert int(expires - after) <= max_age <= int(expires - before)  # the token's lifetime
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert headers["x-rampup-overrides"] == ["served button=green (query, signed)"]

    _, headers, _ = wsgi_get(app, query="qa=")
    assert headers["set-cookie"] == ["rampup_override=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"]

    _, headers, _ = wsgi_get(app, query="qa=button%3Dgreen")  # unsigned: production refuses
    assert "set-cookie" not in headers
    assert "x-rampup-overrides" not in headers

    reading = RampupMiddleware(
        flag_app("button"), FLAGS, override_secret=SECRET, override_query_param="qa"
    )
    _, _, body = wsgi_get(reading, query=f"qa={tok}", cookie="rampup_override=button=blue")
    assert body == b"button=green/OVERRIDE"  # the parameter replaces the cookie


def test_query_param_unsigned_in_debug_is_a_session_cookie() -> None:
    """An unsigned list from the parameter becomes a session cookie in its canonical form."""
    app = RampupMiddleware(
        flag_app("button"),
        FLAGS,
        debug=True,
        override_query_param="qa",
        cookie_secure=True,
        cookie_domain="example.com",
    )
    _, headers, body = wsgi_get(app, query="qa=button%3Dgreen%2C+new-checkout%3Don")
    assert body == b"button=green/OVERRIDE"
    assert headers["set-cookie"] == [
        "rampup_override=button=green,new-checkout=on; Path=/; HttpOnly; SameSite=Lax; "
        "Domain=example.com; Secure"
    ]


def test_query_param_off_by_default() -> None:
    """Without override_query_param the query string is never looked at."""
    app = RampupMiddleware(flag_app("button"), FLAGS, debug=True)
    _, headers, body = wsgi_get(app, query="rampup_override=button%3Dgreen")
    assert body == b"button=blue/DEFAULT"
    assert "set-cookie" not in headers


def test_baggage_opt_in_under_the_same_policy() -> None:
    """Baggage is read only when enabled, and a signed token travels in it as-is."""
    tok = sign("button=green", int(time.time()) + 3600, SECRET)
    off = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    assert wsgi_get(off, baggage=f"rampup.override={tok}")[2] == b"button=blue/DEFAULT"
    on = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET, override_baggage=True)
    assert wsgi_get(on, baggage=f"a=b,rampup.override={tok}")[2] == b"button=green/OVERRIDE"
    assert wsgi_get(on, baggage="rampup.override=button%3Dgreen")[2] == b"button=blue/DEFAULT"


def test_requests_without_overrides_share_one_empty_state() -> None:
    """A request that sends no override costs one shared, empty state and no headers."""
    runtime = Runtime(
        FLAGS,
        Settings.from_options({"override_secret": SECRET}),
        reader_for(Settings.from_options({"override_secret": SECRET})),
    )
    assert isinstance(runtime.overrides, OverrideReader)
    assert runtime.overrides.eager is False

    class View:
        scheme = "http"

        def header(self, name: str) -> str | None:
            return None

        def cookie(self, name: str) -> str | None:
            return None

        def query(self, name: str) -> str | None:
            raise AssertionError("the query string must not be parsed")

    f = runtime.open(None, View())  # type: ignore[arg-type]
    assert runtime.response_headers(f) == []
    assert f.override_state is None  # nothing read: nothing parsed
    assert f.variant("button") == "blue"
    assert f.override_state is None  # read, and none were sent
    assert f._forced is not None
    assert not f._forced


def test_reader_failure_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    """A view whose header() raises costs the override, not the request."""
    runtime = Runtime(FLAGS, Settings(debug=True), reader_for(Settings(debug=True)))

    class Broken:
        scheme = "http"

        def header(self, name: str) -> str | None:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="rampup"):
        f = runtime.open(None, Broken())  # type: ignore[arg-type]
        assert f.variant("button") == "blue"
        headers = runtime.response_headers(f)
    assert headers == [("X-Rampup-Overrides", "refused overrides (rampup): internal error")]
    assert "reading overrides failed" in caplog.text


def test_a_reader_returning_junk_is_read_once_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A custom reader whose state lacks what rampup needs costs the overrides, once: the
    other flags of the request decide as usual."""

    class Junk:
        eager = False

        def read(self, flags: Any) -> Any:
            return object()

    runtime = Runtime(FLAGS, Settings(), Junk())
    with caplog.at_level(logging.ERROR, logger="rampup"):
        f = runtime.open({}, WSGIView)
        assert f.decision("button").reason is Reason.DEFAULT
        assert f.decision("new-checkout").reason is Reason.DEFAULT
    assert caplog.text.count("reading overrides failed") == 1


def test_an_override_needs_no_subject() -> None:
    """An honoured override on a flag without rules resolves no subject: no user callback
    call, no anonymous id minted; a refused one falls back to the rules."""
    calls: list[Any] = []

    def user(request: Any) -> Any:
        calls.append(request)
        return "u-1"

    settings = Settings(overrides="open", debug=True, user=user)
    runtime = Runtime(FLAGS, settings)
    f = runtime.open({"HTTP_X_RAMPUP_OVERRIDE": "button=green"}, WSGIView)
    assert f.decision("button").reason is Reason.OVERRIDE
    assert (calls, f.minted) == ([], None)
    g = runtime.open({"HTTP_X_RAMPUP_OVERRIDE": "button=purple"}, WSGIView)
    assert g.decision("button").reason is Reason.DEFAULT  # unknown variant: refused
    assert calls == []


def test_plain_flags_object_ignores_overrides() -> None:
    """Flags built by hand (no request) never look for overrides."""
    assert Flags(SNAP, Subject("qa-1")).decision("new-checkout").reason is Reason.RULE_MATCH


# -- explain ---------------------------------------------------------------------------------
def test_explain_override_plain_signed_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """explain_override says whether a value would force a flag, and why not."""
    monkeypatch.delenv("RAMPUP_OVERRIDE_SECRET", raising=False)
    got = explain_override(SNAP, "button", "button=green")
    assert (got["honoured"], got["variant"], got["signed"]) == (True, "green", False)
    assert got["reason"].startswith("unsigned: honoured only in debug mode")
    assert explain_override(SNAP, "admin", "admin=on")["reason"] == "flag is not overridable"
    assert explain_override(SNAP, "admin", "button=green")["reason"] == (
        "the override does not mention 'admin'"
    )
    tok = sign("button=green", int(time.time()) + 3600, SECRET, "qa-1")
    unchecked = explain_override(SNAP, "button", tok)
    assert unchecked["honoured"] is False
    assert unchecked["reason"].startswith("signed override, but no secret")
    monkeypatch.setenv("RAMPUP_OVERRIDE_SECRET", SECRET)
    assert explain_override(SNAP, "button", tok, subject="qa-1")["honoured"] is True
    assert explain_override(SNAP, "button", tok, subject="qa-2")["reason"] == (
        "bound to another subject"
    )
    assert explain_override(SNAP, "button", tok, secrets=OLD)["reason"].startswith("bad signature")


# -- the CLI ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        (" 2H ", 7200),
        ("30d", 30 * 86400),
    ],
)
def test_parse_ttl(text: str, seconds: int) -> None:
    """TTLs are seconds, or digits with s/m/h/d units, combinable."""
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "2x", "h", "-1h", "31d", "1.5h", "2 h"])
def test_parse_ttl_rejects(text: str) -> None:
    """Bad or out-of-range TTLs are usage errors."""
    from rampup.cli import CommandError

    with pytest.raises(CommandError) as info:
        parse_ttl(text)
    assert info.value.code == 2


def test_parse_spec() -> None:
    """A spec is flag=variant entries; malformed, duplicate or empty specs are refused."""
    from rampup.cli import CommandError

    assert parse_spec(" a=on, b=green ,") == [("a", "on"), ("b", "green")]
    for bad in ("", " , ", "a", "a=on,a=off", "a=\u00e9", token("a=on")):
        with pytest.raises(CommandError):
            parse_spec(bad)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m rampup ARGS` with a clean RAMPUP_OVERRIDE_SECRET, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if k != "RAMPUP_OVERRIDE_SECRET"}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rampup", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


def test_cli_sign_prints_header_cookie_and_curl() -> None:
    """`rampup sign` prints a header line and a cookie line carrying a token that verifies."""
    before = int(time.time())
    r = run_cli(
        "sign",
        "new-checkout=on, button=green",
        "--ttl",
        "2h",
        env={"RAMPUP_OVERRIDE_SECRET": SECRET},
    )
    after = int(time.time())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("X-Rampup-Override: v1.")
    tok = lines[0].split(": ", 1)[1]
    assert lines[1] == f"Cookie: rampup_override={tok}"
    assert lines[2].startswith("# expires ")
    assert "(in 2h)" in lines[2]
    assert lines[3].startswith("# curl -H 'X-Rampup-Override: v1.")
    got, why = verify(tok, KEYS, time.time())
    assert why == ""
    assert got is not None
    assert got.overrides == "new-checkout=on,button=green"
    assert before + 7200 <= got.expires <= after + 7200


def test_cli_sign_json_subject_and_secret_env(tmp_path: Path) -> None:
    """--json, --subject and --secret-env NAME."""
    r = run_cli(
        "sign",
        "button=green",
        "--subject",
        "qa-1",
        "--secret-env",
        "MY_SECRET",
        "--json",
        env={"MY_SECRET": OLD},
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["subject"] == "qa-1"
    assert data["overrides"] == {"button": "green"}
    assert data["header"] == f"X-Rampup-Override: {data['token']}"
    state = read_values([(data["token"], "header")], SNAP, derive_keys(OLD), subject="qa-1")
    assert dict(state.served) == {"button": "green"}


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["a=on"], {}, 1, "no secret: set the environment variable RAMPUP_OVERRIDE_SECRET"),
        (["a=on", "--ttl", "2 days"], {"RAMPUP_OVERRIDE_SECRET": SECRET}, 2, "--ttl expects"),
        (["a"], {"RAMPUP_OVERRIDE_SECRET": SECRET}, 2, "bad override 'a'"),
        (["a=on", "--secret-env", "NOPE"], {"RAMPUP_OVERRIDE_SECRET": SECRET}, 1, "NOPE"),
    ],
)
def test_cli_sign_errors(args: list[str], env: dict[str, str], code: int, message: str) -> None:
    """Errors exit non-zero with a message, never a traceback."""
    r = run_cli("sign", *args, env=env)
    assert r.returncode == code
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_cli_sign_check_and_explain(tmp_path: Path) -> None:
    """--check refuses what the flag file refuses; explain --override checks a token."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(FLAGS))
    env = {"RAMPUP_OVERRIDE_SECRET": SECRET}
    r = run_cli("sign", "admin=on", "--check", str(path), env=env)
    assert r.returncode == 1
    assert "admin=on: flag is not overridable" in r.stderr
    r = run_cli("sign", "button=green", "--check", str(path), "--json", env=env)
    tok = json.loads(r.stdout)["token"]
    r = run_cli("explain", str(path), "button", "--override", tok, "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["variant"], data["reason"]) == ("green", "OVERRIDE")
    assert data["override"]["honoured"] is True
    r = run_cli("explain", str(path), "button", "--override", tok)
    assert "refused: signed override, but no secret" in r.stdout


# -- limits: maximum lifetime, minimum secret length, bound tokens reported (issue 12) ------
MAKE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def test_verify_refuses_a_token_living_longer_than_the_maximum() -> None:
    """A token from sign() expiring in a year is refused; one at the 30-day cap is accepted."""
    long_lived = sign("button=green", int(NOW + 365 * 86400), SECRET)
    token, why = verify(long_lived, KEYS, NOW)
    assert token is None
    assert why == "lives too long (expires in 365 days; max 30 days)"
    ok, why = verify(sign("button=green", int(NOW + MAX_TTL), SECRET), KEYS, NOW)
    assert ok is not None
    assert why == ""


def test_max_lifetime_is_configurable() -> None:
    """override_max_ttl lowers (or raises) the cap the middleware applies."""
    tok = sign("button=green", int(time.time()) + 7200, SECRET)
    strict = RampupMiddleware(
        flag_app("button"), FLAGS, override_secret=SECRET, override_max_ttl=3600
    )
    _, headers, body = wsgi_get(strict, x_rampup_override=tok)
    assert body == b"button=blue/DEFAULT"
    assert "x-rampup-overrides" not in headers  # not authentic enough to earn the report
    assert verify(tok, KEYS, time.time(), 3600)[1].endswith("; max 3600 seconds)")
    lenient = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    _, _, body = wsgi_get(lenient, x_rampup_override=tok)
    assert body == b"button=green/OVERRIDE"


@pytest.mark.parametrize(
    "options",
    [
        {"override_secret": "short"},
        {"override_secret": (SECRET, "old-and-short")},
        {"overrides": "signed", "framework_secret": "short-framework-secret"},
    ],
)
def test_short_secret_refused_in_production(options: dict[str, object]) -> None:
    """A secret under 32 bytes fails at start-up outside debug mode, saying how to make one."""
    with pytest.raises(ValueError, match="at least 32") as info:
        reader_for(Settings.from_options(options))
    assert MAKE in str(info.value)


def test_short_secret_allowed_with_a_warning_in_debug(caplog: pytest.LogCaptureFixture) -> None:
    """In debug mode a short secret works, with a warning that says how to make a real one."""
    caplog.set_level(logging.WARNING, logger="rampup")
    reader = reader_for(Settings.from_options({"override_secret": "short", "debug": True}))
    assert reader is not None
    assert reader.keys == derive_keys("short")
    assert any(MAKE in r.getMessage() for r in caplog.records)


def test_short_framework_secret_turns_signed_overrides_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A short SECRET_KEY (not chosen for overrides) does not break the app: under the default
    policy overrides are off, with an error saying why and how to make a secret."""
    caplog.set_level(logging.ERROR, logger="rampup")
    assert reader_for(Settings.from_options({"framework_secret": "s3cret"})) is None
    assert any("signed overrides are off" in r.getMessage() for r in caplog.records)


def test_token_bound_to_another_subject_is_reported() -> None:
    """A valid token bound to another subject is refused, and the report header says so (its
    holder has an authentic token, so the reason is shown, as for any signed override)."""
    app = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    tok = sign("button=green", int(time.time()) + 3600, SECRET, subject="qa-1")
    _, headers, body = wsgi_get(app, x_rampup_override=tok)
    assert body == b"button=blue/DEFAULT"
    report = headers["x-rampup-overrides"]
    assert len(report) == 1
    assert report[0].startswith("refused token v1.")
    assert report[0].endswith("(header, signed): bound to another subject")


def test_bound_token_still_serves_its_subject() -> None:
    """Binding still works for the subject named in the token."""
    tok = sign("button=green", int(NOW + 60), SECRET, subject="qa-1")
    state = read_values([(tok, "header")], SNAP, KEYS, now=NOW, subject="qa-1")
    assert dict(state.served) == {"button": "green"}
    assert rampup.load(FLAGS).flags["button"].overridable


def test_cli_sign_warns_about_a_short_secret() -> None:
    """`rampup sign` with a secret under 32 bytes still mints the token (a debug app accepts
    it) but warns that a production app refuses it, with the command that makes one."""
    r = run_cli("sign", "button=green", env={"RAMPUP_OVERRIDE_SECRET": "short"})
    assert r.returncode == 0, r.stderr
    assert "shorter than 32 bytes" in r.stderr
    assert MAKE in r.stderr
    long_enough = run_cli("sign", "button=green", env={"RAMPUP_OVERRIDE_SECRET": SECRET})
    assert long_enough.stderr == ""


def test_asgi_learning_production_mode_with_a_short_secret_serves_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ASGI without debug= learns the mode at the first request; a short secret found to be
    in production then turns overrides off with an error, and the request is served."""
    import asyncio

    from rampup.asgi import RampupMiddleware as ASGIMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = str(rampup.flags.variant("button")).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    mw = ASGIMiddleware(app, flags=FLAGS, watch=False, override_secret="short")
    tok = sign("button=green", int(time.time()) + 600, "short")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"x-rampup-override", tok.encode())],
    }
    caplog.set_level(logging.ERROR, logger="rampup")
    asyncio.run(mw(scope, receive, send))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"blue"
    assert any("overrides are off" in r.getMessage() for r in caplog.records)
