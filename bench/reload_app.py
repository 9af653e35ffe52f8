"""The WSGI app ``bench_reload.py`` serves with gunicorn ``--preload -w 4``.

``RELOAD_FLAGS`` is a flag file path or a ``redis://`` URL (namespace in the query). At its
first request a worker starts a reporter thread that checks every millisecond whether flag
``RELOAD_PROBE`` is killed in the snapshot it serves and appends ``pid 0|1 monotonic`` to
``RELOAD_REPORT`` on each change (CLOCK_MONOTONIC is system-wide, so the benchmark compares
it with the moment it wrote the change). ``RELOAD_FULL=1`` is the baseline: every reload
parses, validates and compiles the whole document again (``previous`` and the FileSource's
TOML cache dropped), as before.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import rampup
from rampup import config

if os.environ.get("RELOAD_FULL") == "1":
    from rampup import http_source, sources

    def _full(load: Any) -> Any:
        def without_previous(
            *args: Any, previous: Any = None, toml_cache: Any = None, **kwargs: Any
        ) -> Any:
            return load(*args, **kwargs)

        return without_previous

    sources.load_bytes = _full(config.load_bytes)
    try:
        from rampup import redis_source

        redis_source.load = _full(config.load)
    except ImportError:  # pragma: no cover - rampup[redis] missing
        pass
    http_source.load = _full(config.load)

from rampup.sources import as_source
from rampup.wsgi import RampupMiddleware

FLAGS = os.environ["RELOAD_FLAGS"]
PROBE = os.environ["RELOAD_PROBE"]
if "://" in FLAGS:
    source = as_source(FLAGS)
else:
    from rampup.sources import FileSource

    source = FileSource(FLAGS, interval=float(os.environ.get("RELOAD_INTERVAL", "0.5")), settle=0)
_reporter: list[threading.Thread] = []
_lock = threading.Lock()


def _report() -> None:
    seen = None
    with open(os.environ["RELOAD_REPORT"], "a", encoding="utf-8") as out:
        while True:
            flag = source.snapshot.flags.get(PROBE)
            killed = bool(flag is not None and flag.killed)
            if killed != seen:
                seen = killed
                out.write(f"{os.getpid()} {int(killed)} {time.monotonic()!r}\n")
                out.flush()
            time.sleep(0.001)


def inner(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    with _lock:
        if not _reporter:
            _reporter.append(threading.Thread(target=_report, daemon=True))
            _reporter[0].start()
    time.sleep(0.2)  # concurrent requests land on different sync workers
    body = f"{os.getpid()} {int(rampup.flags.enabled(PROBE))}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = RampupMiddleware(inner, flags=source)
