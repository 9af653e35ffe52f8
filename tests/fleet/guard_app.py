"""A tiny WSGI app for the fleet guard's end-to-end test (gunicorn ``--preload -w 4``).

``GET /bad`` reads ``bad-checkout`` and fails (500) for 10 % of subjects when served ``on``
only; ``GET /good`` reads ``good-checkout`` and fails for 20 % of subjects whichever variant
(a flaky page, equally flaky in both arms: a healthy rollout). The subject is ``X-User``; the
body is ``<pid> <variant>``. The clock is compressed by the flag document (a hold of a second)
and by the guard's options here: it looks every 0.2 s and flushes every 0.1-0.3 s.
``GUARD_REDIS_URL`` names the store (namespace ``shop``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import rampup
from rampup import guard_fleet
from rampup.redis_source import RedisSource
from rampup.wsgi import RampupMiddleware

source = RedisSource(os.environ["GUARD_REDIS_URL"], "shop", interval=0.2)


def inner(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    user = int(environ.get("HTTP_X_USER", "1"))
    if path == "/bad":
        on = rampup.flags.enabled("bad-checkout")
        fail = on and user % 10 == 0
    else:
        on = rampup.flags.enabled("good-checkout")
        fail = user % 5 == 0
    body = f"{os.getpid()} {'on' if on else 'off'}".encode()
    start_response("500 Oops" if fail else "200 OK", [("Content-Length", str(len(body)))])
    return [body]


app = RampupMiddleware(inner, flags=source, user_header="X-User")
guard = guard_fleet.start(source, interval=0.2, flush_every=(0.1, 0.3), lock_ttl=2.0)
