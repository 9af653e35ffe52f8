"""``HttpSource``: a flag document served over HTTP (object storage, a CDN, an internal
service), polled with ``If-None-Match`` so an unchanged document costs a 304 and no parsing.

Polls are jittered (±20 %) so a fleet does not hit the server in lockstep; any error (the
server down, a 5xx, a document too large or invalid) keeps the last good snapshot and sets
``status`` to ``"stale"``. Like :class:`~rampup.redis_source.RedisSource`, the poller thread
starts at the first ``snapshot`` read in a process and restarts in forked children. Standard
library only (urllib).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import urllib.error
import urllib.request
import weakref
from typing import Any

from .config import load
from .engine import Snapshot
from .errors import ConfigError
from .watching import StartsOnFirstRead

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["MAX_BYTES", "HttpSource"]

log = logging.getLogger("rampup")

#: a flag document larger than this is refused (a flag file is reviewed by people)
MAX_BYTES = 10 * 1024 * 1024


class HttpSource(StartsOnFirstRead):
    """Flags from ``url`` (JSON, or TOML when the path ends in ``.toml``), polled every
    ``interval`` seconds. ``status`` is ``"ready"``, ``"stale"`` (serving the last good after
    an error) or ``"error"`` (nothing good fetched yet: no flag is defined)."""

    def __init__(
        self,
        url: str,
        interval: float = 10.0,
        *,
        watch: bool = True,
        timeout: float = 5.0,
        max_bytes: int = MAX_BYTES,
        headers: dict[str, str] | None = None,
        env: str | None = None,
    ) -> None:
        self.url = url
        #: the flag file environment applied to every document (None: ``$RAMPUP_ENV``)
        self.env = env
        self.interval = interval
        self.watch = watch
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.headers = dict(headers or {})
        self.etag: str | None = None
        self.status = "error"
        self.last_error: str | None = None
        self.swaps = 0
        self._snapshot = Snapshot.build({}, {}, f"<{url}: nothing loaded>")
        self._pid: int | None = None
        self._reads = 0
        self._stop = threading.Event()
        if not self.poll():
            log.critical(
                "rampup: cannot read flags from %s (%s): no flag is defined until it can "
                "(reads are UNKNOWN_FLAG, not 'off')",
                url,
                self.last_error,
            )

    def poll(self) -> bool:
        """Fetch once; swap if the document changed. False if the fetch or the document
        failed (the last good snapshot keeps serving)."""
        request = urllib.request.Request(self.url, headers=self.headers)
        if self.etag:
            request.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
                etag = response.headers.get("ETag")
            if len(body) > self.max_bytes:
                raise ValueError(f"the document is larger than {self.max_bytes} bytes")
            snapshot = load(self._parse(body), env=self.env, previous=self._snapshot)
        except urllib.error.HTTPError as exc:
            if exc.code == 304:  # not modified: what we serve is current
                self._ok()
                return True
            return self._failed(f"HTTP {exc.code} {exc.reason}")
        except ConfigError as exc:
            return self._failed(f"the document is invalid:\n{exc}")
        except Exception as exc:  # down, timeout, a bad body: keep the last good
            return self._failed(str(exc) or type(exc).__name__)
        self._snapshot = snapshot
        self.etag = etag
        self.swaps += 1
        log.info("rampup: loaded %d flags from %s", len(snapshot), self.url)
        self._ok()
        return True

    def _parse(self, body: bytes) -> Any:
        text = body.decode("utf-8")
        if self.url.split("?", 1)[0].lower().endswith(".toml"):
            return tomllib.loads(text)
        return json.loads(text)

    def _ok(self) -> None:
        if self.status == "stale":
            log.warning("rampup: flags from %s are current again", self.url)
        self.status, self.last_error = "ready", None

    def _failed(self, problem: str) -> bool:
        new = "stale" if self.swaps else "error"
        if (new, problem) != (self.status, self.last_error):
            log.error(
                "rampup: reading flags from %s failed: %s; %s",
                self.url,
                problem,
                "still serving the last good flags" if self.swaps else "no flag is defined",
            )
        self.status, self.last_error = new, problem
        return False

    def _start(self) -> None:
        self._pid = os.getpid()
        self._reads = 1
        self._stop = threading.Event()  # a fresh one per process
        if self.watch:
            threading.Thread(
                target=_poll_loop,
                args=(weakref.ref(self), self._stop, self.interval),
                name="rampup-http",
                daemon=True,
            ).start()

    def close(self) -> None:
        """Stop polling."""
        self._stop.set()

    def __repr__(self) -> str:
        return f"HttpSource({self.url!r}, {self.status}, {len(self._snapshot)} flags)"


def _poll_loop(ref: weakref.ref[HttpSource], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval * random.uniform(0.8, 1.2)):  # jitter: not security
        source = ref()
        if source is None:
            return
        try:
            source.poll()
        except Exception:  # pragma: no cover - poll catches what it can
            log.exception("rampup: HTTP flag poller failed")
        del source
