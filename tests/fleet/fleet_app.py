"""A tiny WSGI app for the gunicorn fleet tests: rampup's WSGI middleware over a RedisSource.

``GET /`` answers ``<pid> <new-checkout enabled?> <version>``, after ``?sleep=S`` seconds (so
concurrent requests land on different sync workers). Environment:

- ``FLEET_REDIS_URL``: the store; namespace ``shop``.
- ``FLEET_MODE``: ``lazy`` (default: the master reads nothing, so it runs no watcher),
  ``master-read`` (the master reads the snapshot before forking: its watcher thread does not
  survive the fork, the guards must restart one per worker) or ``control`` (as master-read,
  with the fork guards disabled: shows that the fleet tests fail without them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import rampup
from rampup import redis_source
from rampup.redis_source import RedisSource
from rampup.wsgi import RampupMiddleware

MODE = os.environ.get("FLEET_MODE", "lazy")
source = RedisSource(os.environ["FLEET_REDIS_URL"], "shop", interval=0.2)

if MODE in ("master-read", "control"):
    source.snapshot  # noqa: B018 - starts a watcher in the master, as an eager library would
if MODE == "control":
    # What a source without fork handling does: no at-fork hook, no pid check.
    redis_source._sources.discard(source)
    RedisSource.snapshot = property(lambda self: self._snapshot)  # type: ignore[method-assign,assignment]


def inner(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    sleep = float(parse_qs(environ.get("QUERY_STRING", "")).get("sleep", ["0"])[0])
    time.sleep(sleep)
    on = rampup.flags.enabled("new-checkout")
    body = f"{os.getpid()} {int(on)} {source.version}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = RampupMiddleware(inner, flags=source)
