"""A tiny WSGI app for the lazy-watcher test: rampup's WSGI middleware over a FileSource.

``GET /?sleep=S`` answers ``<pid> <checkout enabled?>`` after S seconds (so concurrent
requests land on different sync workers). ``LAZY_FLAGS`` names the flag file; with
``LAZY_MODE=master-read`` the master reads the snapshot before forking (the control: an eager
read starts a watcher in a process that never serves).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import rampup
from rampup.sources import FileSource
from rampup.wsgi import RampupMiddleware

source = FileSource(os.environ["LAZY_FLAGS"], interval=0.05, settle=0)
if os.environ.get("LAZY_MODE") == "master-read":
    source.snapshot  # noqa: B018 - as an app reading its flags at import would


def inner(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    time.sleep(float(parse_qs(environ.get("QUERY_STRING", "")).get("sleep", ["0"])[0]))
    body = f"{os.getpid()} {int(rampup.flags.enabled('checkout'))}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = RampupMiddleware(inner, flags=source)
