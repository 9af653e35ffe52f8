"""`rampup demo` as a user runs it: a subprocess serving HTTP on 127.0.0.1; and the demo's
outcome panel through the WSGI interface, in process."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from rampup.demo import make_app
from rampup.wsgi import RampupMiddleware
from timeless import timeless_flags

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _serve(*args: str) -> Iterator[str]:
    """Run `rampup demo --port 0 ARGS...` and yield its URL; always stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rampup", "demo", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
            if not line and proc.poll() is not None:
                break
        assert url, "demo did not print its URL"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def demo_url() -> Iterator[str]:
    """Start `rampup demo --port 0` and yield its URL; always stop it."""
    with _serve() as url:
        yield url


def test_demo_serves_an_edited_flag_file_without_a_restart(tmp_path: Path) -> None:
    """Edit the file the demo serves (killed = true) and the next requests see it: the
    kill-switch walk-through the Quickstart suggests."""
    flags = tmp_path / "flags.toml"
    flags.write_text((ROOT / "examples" / "flags.toml").read_text())
    with _serve("--flags", str(flags)) as url:
        assert str(flags).encode() in _get(url + "/")[2]
        who = {"X-User-Id": "qa-alice"}
        assert json.loads(_get(url + "/api/flags", who)[2])["flags"]["new-checkout"]["reason"] == (
            "RULE_MATCH"
        )
        text = flags.read_text().replace(
            'description = "The rewritten checkout flow"\n',
            'description = "The rewritten checkout flow"\nkilled = true\n',
        )
        flags.write_text(text)
        deadline = time.monotonic() + 30
        reason = None
        while reason != "KILLED" and time.monotonic() < deadline:
            time.sleep(0.2)
            reason = json.loads(_get(url + "/api/flags", who)[2])["flags"]["new-checkout"]["reason"]
        assert reason == "KILLED"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_demo_serves_flags_for_staff_and_anonymous(demo_url: str) -> None:
    """A staff user gets new-checkout on; an anonymous visitor gets a sticky id cookie."""
    status, _, body = _get(
        demo_url + "/api/flags", {"X-User-Id": "42", "X-User-Email": "ann@example.com"}
    )
    assert status == 200
    data = json.loads(body)
    assert data["subject"] == "42"
    assert data["flags"]["new-checkout"] == {"variant": "on", "value": True, "reason": "RULE_MATCH"}
    assert data["flags"]["recommendations"]["reason"] == "KILLED"

    status, headers, body = _get(demo_url + "/api/flags")
    assert status == 200
    cookie = headers.get("Set-Cookie", "")
    anon = json.loads(body)["subject"]
    assert cookie.startswith(f"rampup_id={anon};")
    assert "HttpOnly" in cookie


def test_demo_guarded_route(tmp_path: Path) -> None:
    """/checkout is 404 unless new-checkout is on for the subject (QA is listed by id)."""
    # the example flags without the date ramp, so "someone" is off on any date
    with _serve("--flags", str(timeless_flags(tmp_path))) as demo_url:
        assert _get(demo_url + "/checkout", {"X-User-Id": "qa-alice"})[0] == 200
        assert _get(demo_url + "/checkout", {"X-User-Id": "someone"})[0] == 404
        status, _, page = _get(demo_url + "/", {"X-User-Id": "qa-alice"})
    assert status == 200
    assert b'data-flag="new-checkout" data-served="on"' in page


def test_demo_page_sets_the_anonymous_id_and_keeps_it(demo_url: str) -> None:
    """GET / (the page a visitor opens) sets rampup_id; sent back, it serves the same variants."""
    status, headers, page = _get(demo_url + "/")
    assert status == 200
    cookie = headers.get("Set-Cookie", "")
    assert cookie.startswith("rampup_id="), headers
    anon = cookie.split(";")[0].partition("=")[2]
    assert f'id="subject-key">{anon}<'.encode() in page
    served = re.findall(rb'data-flag="([^"]+)" data-served="([^"]+)"', page)
    for _ in range(3):
        again = _get(demo_url + "/", {"Cookie": f"rampup_id={anon}"})[2]
        assert re.findall(rb'data-flag="([^"]+)" data-served="([^"]+)"', again) == served


def test_demo_forms_switch_identity_and_force_a_variant(demo_url: str) -> None:
    """POST /identity stores who you are in a cookie; POST /override redirects to the
    override link, which the middleware honours (debug mode) and reports."""
    req = urllib.request.Request(
        demo_url + "/identity", data=b"id=qa-bob&email=&beta=true", method="POST"
    )
    opener = urllib.request.build_opener(_NoRedirect)
    status, headers, _ = _open(opener, req)
    assert status == 303
    ident = headers["Set-Cookie"].split(";")[0]
    page = _get(demo_url + "/", {"Cookie": ident})[2]
    assert b'id="subject-key">qa-bob<' in page
    assert b'data-flag="new-checkout" data-served="on"' in page

    req = urllib.request.Request(
        demo_url + "/override", data=b"new-checkout=off&admin-panel=on", method="POST"
    )
    status, headers, _ = _open(opener, req)
    assert status == 303
    location = headers["Location"]
    assert location == "/?rampup_override=new-checkout=off,admin-panel=on"
    status, headers, page = _get(demo_url + location, {"Cookie": ident})
    assert b'data-flag="new-checkout" data-served="off"' in page
    assert headers["Set-Cookie"].startswith("rampup_override=new-checkout=off,admin-panel=on;")
    assert "refused admin-panel=on" in headers["X-Rampup-Overrides"]
    assert b"flag is not overridable" in page


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _open(
    opener: urllib.request.OpenerDirector, req: urllib.request.Request
) -> tuple[int, dict[str, str], bytes]:
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# -- the outcome panel, through the WSGI interface ------------------------------------------------
def _wsgi(
    app: RampupMiddleware, path: str, method: str = "GET", **headers: str
) -> tuple[str, dict[str, str], str]:
    """One request to ``app``: (status line, headers, body)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(b""),
        **{"HTTP_" + k.upper(): v for k, v in headers.items()},
    }
    setup_testing_defaults(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = app(environ, lambda status, hdrs, exc_info=None: started.append((status, hdrs)))
    text = b"".join(body).decode()
    return started[0][0], dict(started[0][1]), text


def _outcomes(app: RampupMiddleware) -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
    data = json.loads(_wsgi(app, "/api/outcomes")[2])
    return data["simulated"], {(r["flag"], r["variant"]): r for r in data["outcomes"]}


def _cell(page: str, flag: str, variant: str, name: str) -> str:
    row = re.search(rf'<tr data-flag="{flag}" data-variant="{variant}".*?</tr>', page, re.S)
    assert row, f"no row for {flag}={variant}"
    cell = re.search(rf'<td class="{name}">(?:<span[^>]*>)?([^<]*)<', row.group(0))
    assert cell, row.group(0)
    return cell.group(1)


def test_a_fresh_demo_shows_no_traffic_yet() -> None:
    """Before any request has read a split flag, the panel says so and the JSON is empty."""
    app = make_app(watch=False)
    assert _outcomes(app) == (0, {})
    status, _, page = _wsgi(app, "/")
    assert status == "200 OK"
    assert 'id="no-traffic">No traffic yet' in page
    assert "outcomes-table" not in page


def test_page_views_are_counted_as_real_traffic() -> None:
    """The page reads every flag, so the second view shows the first one: one request per split
    flag's variant served, nothing simulated."""
    app = make_app(watch=False)
    _wsgi(app, "/", x_user_id="1002")
    page = _wsgi(app, "/", x_user_id="1002")[2]
    served = dict(re.findall(r'data-flag="([^"]+)" data-served="([^"]+)"', page))
    assert _cell(page, "new-checkout", served["new-checkout"], "requests") == "1"
    assert _cell(page, "checkout-button", served["checkout-button"], "requests") == "1"
    assert 'data-flag="dark-mode"' in page  # its card; but a constant flag has no outcome row
    assert '<tr data-flag="dark-mode"' not in page
    assert "All real: requests this demo served" in page
    simulated, rows = _outcomes(app)
    assert simulated == 0
    assert rows[("new-checkout", served["new-checkout"])]["requests"] == 2


def test_simulate_sends_200_requests_through_the_middleware_with_errors_on_on(
    tmp_path: Path,
) -> None:
    """POST /simulate runs 200 requests from new subjects through the demo's middleware: the
    book counts them per variant, one in ten served new-checkout=on failed (and each failure
    is a different subject), and the page shows the figures, labelled as simulated. (The
    example file without its date ramp: from 2026-12-10 the ramp serves everyone on.)"""
    app = make_app(timeless_flags(tmp_path), watch=False)
    status, headers, _ = _wsgi(app, "/simulate", "POST")
    assert status == "303 See Other"
    assert headers["Location"] == "/#outcomes"
    simulated, rows = _outcomes(app)
    assert simulated == 200
    on, off = rows[("new-checkout", "on")], rows[("new-checkout", "off")]
    assert on["requests"] + off["requests"] == 200
    assert on["requests"] >= 40  # one in four is staff, whom a rule serves on
    assert on["errors"] == on["requests"] // 10
    assert off["errors"] == 0
    assert on["error_subjects"] == on["errors"]
    assert on["p99_ms"] is not None
    assert on["p99_ms"] >= 3  # the simulated new checkout waits 3 ms
    assert sum(r["requests"] for (f, _), r in rows.items() if f == "checkout-button") == 200

    page = _wsgi(app, "/")[2]
    assert _cell(page, "new-checkout", "on", "requests") == str(on["requests"])
    assert _cell(page, "new-checkout", "on", "errors") == str(on["errors"])
    assert _cell(page, "new-checkout", "on", "error-rate") == f"{on['error_rate']:.1%}"
    assert _cell(page, "new-checkout", "on", "p99").endswith(" ms")
    assert "Includes 200 simulated requests (1 run)." in page
    assert "no-traffic" not in page

    _wsgi(app, "/simulate", "POST")  # new subjects again: no failure is deduplicated
    simulated, rows = _outcomes(app)
    assert simulated == 400
    on = rows[("new-checkout", "on")]
    assert on["error_subjects"] == on["errors"] >= 8
    assert rows[("new-checkout", "off")]["requests"] + on["requests"] == 401  # + the page view


def test_a_client_cannot_send_simulated_requests() -> None:
    """GET /simulated and GET /simulate from outside are plain 404s; nothing is counted."""
    app = make_app(watch=False)
    assert _wsgi(app, "/simulated", x_user_id="sim-1-1")[0] == "404 Not Found"
    assert _wsgi(app, "/simulate")[0] == "404 Not Found"
    assert _outcomes(app) == (0, {})
