"""`rampup demo` as a user runs it: a subprocess serving HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest


@pytest.fixture
def demo_url() -> Iterator[str]:
    """Start `rampup demo --port 0` and yield its URL; always stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rampup", "demo", "--port", "0"],
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


def test_demo_guarded_route(demo_url: str) -> None:
    """/checkout is 404 unless new-checkout is on for the subject (QA is listed by id)."""
    assert _get(demo_url + "/checkout", {"X-User-Id": "qa-alice"})[0] == 200
    assert _get(demo_url + "/checkout", {"X-User-Id": "someone"})[0] == 404
    status, _, page = _get(demo_url + "/", {"X-User-Id": "qa-alice"})
    assert status == 200
    assert b"New checkout!" in page
