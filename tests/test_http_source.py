"""HttpSource against a real http.server on 127.0.0.1: ETag polling, last good, size cap."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rampup.http_source import HttpSource
from rampup.sources import as_source


class Origin:
    """A tiny flag server: serves ``body`` with an ETag, 304 on a matching If-None-Match."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.requests: list[str | None] = []  # the If-None-Match of each request
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.requests.append(self.headers.get("If-None-Match"))
                etag = '"' + hashlib.sha256(origin.body).hexdigest()[:16] + '"'
                if origin.status != 200:
                    self.send_error(origin.status)
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(origin.body)))
                self.end_headers()
                self.wfile.write(origin.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/flags.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, flags: dict[str, Any]) -> None:
        self.body = json.dumps({"version": 1, "flags": flags}).encode()


@pytest.fixture
def origin() -> Iterator[Origin]:
    o = Origin()
    o.serve({"a": {"default": "on"}})
    yield o
    o.server.shutdown()
    o.server.server_close()


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition still false"
        time.sleep(0.02)


def test_loads_at_boot_and_polls_with_if_none_match(origin: Origin) -> None:
    """The first fetch loads the document; later polls send the ETag and a 304 changes nothing."""
    source = HttpSource(origin.url, watch=False)
    assert source.status == "ready"
    assert set(source.snapshot.flags) == {"a"}
    assert source.poll()
    assert origin.requests[0] is None
    assert origin.requests[1] == source.etag
    assert source.swaps == 1  # the 304 did not reload


def test_a_change_is_picked_up_by_the_jittered_poller(origin: Origin) -> None:
    """The poller thread (started at the first read) swaps in a changed document."""
    source = HttpSource(origin.url, interval=0.05)
    try:
        source.snapshot  # noqa: B018
        origin.serve({"a": {"default": "on"}, "b": {"default": "off"}})
        wait_until(lambda: "b" in source.snapshot.flags)
    finally:
        source.close()


def test_errors_keep_the_last_good_flags(origin: Origin) -> None:
    """A 500, an invalid document or an oversized one: the last good snapshot keeps serving."""
    source = HttpSource(origin.url, watch=False, max_bytes=10_000)
    origin.status = 500
    assert not source.poll()
    assert source.status == "stale"
    assert "500" in (source.last_error or "")
    origin.status = 200
    origin.serve({"a": {"default": "maybe"}})
    assert not source.poll()
    assert "invalid" in (source.last_error or "")
    origin.serve({f"f{i}": {"default": "on"} for i in range(1000)})
    assert not source.poll()
    assert "larger than" in (source.last_error or "")
    assert set(source.snapshot.flags) == {"a"}
    origin.serve({"c": {"default": "on"}})
    assert source.poll()
    assert source.status == "ready"


def test_unreachable_at_boot_defines_no_flag(caplog: pytest.LogCaptureFixture) -> None:
    """A server that cannot be reached at boot: status error, no flag defined, logged."""
    source = HttpSource("http://127.0.0.1:9/flags.json", watch=False, timeout=1)
    assert source.status == "error"
    assert len(source.snapshot) == 0
    assert "UNKNOWN_FLAG" in caplog.text


def test_as_source_takes_an_http_url(origin: Origin) -> None:
    """flags="http://..." gives an HttpSource (the adapters' one line)."""
    source = as_source(origin.url, watch=False)
    assert isinstance(source, HttpSource)
    assert "a" in source.snapshot.flags
