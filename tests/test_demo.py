"""`rampup demo` as a user runs it: a subprocess serving HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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
