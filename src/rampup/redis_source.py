"""``RedisSource``: serve the flag document of a Redis namespace, kept current by one daemon
thread per process; requests only ever read ``source.snapshot``.

The watcher subscribes to the namespace's change channel and re-reads the document after every
(re)subscribe; on a message it compares the sha and fetches only a different document. Pub/sub
alone can go silently deaf (a killed subscription, a write that did not publish), so it also
checks ``version sha`` every ``interval`` seconds (±20 % jitter, so a fleet does not poll in
lockstep) and pings. It adopts any sha that differs, newer or not: a Redis restarted empty
resets the version counter. Parsing and compiling happen in the watcher, never on the request
path.

Outages never stop serving: Redis down, the document gone or invalid, the last good snapshot
keeps serving indefinitely and ``status`` says so. At boot the order is Redis, then
``cache_path`` (the last good document, written after every swap), then ``fallback`` (a
bundled flag file); ``require_store=True`` makes a store that cannot be read at boot fatal.
With none of them, no flag is defined: every read is ``UNKNOWN_FLAG`` (logged), never a silent
"off".

Fork safety: the watcher starts at the first ``snapshot`` read in a process (so a pre-fork
master that serves nothing runs none); ``os.register_at_fork`` resets the state in a child, and
a pid check at the read covers servers that fork without running the hooks (uWSGI). The
PubSub object lives inside the thread, so each process builds its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from .config import load
from .engine import Snapshot
from .errors import ConfigError, StoreError
from .store import Document, Store, parse_url
from .watching import StartsOnFirstRead

__all__ = ["READY", "STALE", "STATUS_ERROR", "RedisSource", "live_sources"]

log = logging.getLogger("rampup")

#: serving the live document, and Redis confirmed it within the last few polls
READY = "ready"
#: serving a last good document (Redis unreachable, the document gone or invalid)
STALE = "stale"
#: serving no flags: nothing good was ever read (every flag is UNKNOWN_FLAG)
STATUS_ERROR = "error"

# Capped low so a restarted Redis is picked up within about a second; a dead one costs each
# process one connection attempt a second, the same as its poll.
_MAX_BACKOFF = 1.0


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)  # spreads a fleet's polls; not security


class RedisSource(StartsOnFirstRead):
    """The flag document of one Redis namespace, served from memory.

    ``url`` is ``redis://host:6379/0?namespace=shop`` (``rediss://`` for TLS; a password goes
    in the URL). Attributes for health checks: ``status`` (``"ready"``, ``"stale"``,
    ``"error"``), ``age`` (seconds since Redis last confirmed the served document),
    ``last_error``, ``version``, ``sha`` and ``updated_at`` of the served document.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        namespace: str | None = None,
        *,
        cache_path: str | os.PathLike[str] | None = None,
        fallback: str | os.PathLike[str] | None = None,
        require_store: bool = False,
        interval: float = 1.0,
        watch: bool = True,
        client: Any = None,
        env: str | None = None,
    ) -> None:
        redis_url, ns = parse_url(url)
        #: the flag file environment applied to every document (None: ``$RAMPUP_ENV``)
        self.env = env
        self.namespace = namespace or ns or "default"
        self.store = Store(client if client is not None else redis_url, self.namespace)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.interval = interval
        self.watch = watch
        self.status = STATUS_ERROR
        self.last_error: str | None = None
        self.version = 0
        self.sha = ""
        self.updated_at = 0.0
        #: swaps done by this process (boot included)
        self.swaps = 0
        self._checked = 0.0  # time.monotonic() of the last confirmation from Redis
        self._thread: threading.Thread | None = None
        self._snapshot = Snapshot.build({}, {}, f"<redis {self.namespace}: nothing loaded>")
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._reset_process_state(forked=False)
        self._pid: int | None = None  # the process whose watcher runs; None: not started
        self._reads = 0  # snapshot reads since the watcher (re)started: paces the pid check
        self._on_serving: list[Callable[[], object]] = []
        self._boot(fallback, require_store)
        _sources.add(self)

    # -- the request path: a counter, an attribute read; a pid comparison every 256 reads --
    @property
    def age(self) -> float:
        """Seconds since Redis last confirmed the served document (inf: never)."""
        return time.monotonic() - self._checked if self._checked else float("inf")

    # -- boot --------------------------------------------------------------------------------
    def _boot(self, fallback: str | os.PathLike[str] | None, require_store: bool) -> None:
        try:
            got = self._fetch()
        except Exception as exc:  # unreachable, auth, TLS: all mean "not from Redis"
            got = f"Redis is unreachable ({exc})"
        if not isinstance(got, str):
            self._adopt(*got)
            return
        problem = got
        if require_store:
            raise StoreError(
                f"rampup: require_store=True and namespace {self.namespace!r} cannot be read: "
                f"{problem}"
            )
        self.last_error = problem
        if self._boot_from_cache() or (fallback is not None and self._boot_from_file(fallback)):
            self.status = STALE
            log.warning(
                "rampup: flag store %s: %s; serving %s until it is back",
                self.namespace,
                problem,
                self._snapshot.origin,
            )
            return
        log.critical(
            "rampup: flag store %s: %s, and no cache_path or fallback file to serve instead: "
            "no flag is defined until it is back (reads are UNKNOWN_FLAG, not 'off')",
            self.namespace,
            problem,
        )

    def _missing(self) -> str:
        return (
            f"no flag document at {self.store.doc_key} "
            f"(push one: rampup push flags.toml --redis URL --namespace {self.namespace})"
        )

    def _boot_from_cache(self) -> bool:
        if self.cache_path is None:
            return False
        try:
            raw = json.loads(self.cache_path.read_text())
            doc = Document(
                int(raw["version"]),
                str(raw["sha"]),
                raw["doc"],
                float(raw.get("updated_at", 0)),
                str(raw.get("by", "")),
                str(raw.get("reason", "")),
            )
            snapshot = self._compile(doc, origin=f"{self.cache_path} (cache of v{doc.version})")
        except FileNotFoundError:
            return False
        except Exception as exc:
            log.error("rampup: cache file %s is unreadable, ignored: %s", self.cache_path, exc)
            return False
        self._swap(doc, snapshot)
        return True

    def _boot_from_file(self, path: str | os.PathLike[str]) -> bool:
        try:
            snapshot = load(path, env=self.env)
        except ConfigError as exc:
            log.error("rampup: fallback file %s is invalid, ignored:\n%s", path, exc)
            return False
        self._snapshot = snapshot
        self.swaps += 1
        return True

    # -- documents ---------------------------------------------------------------------------
    def _compile(self, doc: Document, origin: str | None = None) -> Snapshot:
        # previous: only what changed is validated and compiled again (a one-flag kill in a
        # 10,000-flag document costs one flag, not the document)
        snapshot = load(doc.data, env=self.env, previous=self._snapshot)
        where = origin or f"redis:{self.namespace}@v{doc.version}"
        return dataclasses.replace(snapshot, origin=where)

    def _swap(self, doc: Document, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one assignment: requests see the old or the new, whole
        self.version, self.sha, self.updated_at = doc.version, doc.sha, doc.updated_at
        self.swaps += 1

    def _adopt(self, doc: Document, snapshot: Snapshot) -> None:
        """Serve ``doc`` (fresh from Redis), then cache it and acknowledge it."""
        self._swap(doc, snapshot)
        self._confirmed()
        log.info(
            "rampup: flag store %s: serving v%d (%s, %d flags)",
            self.namespace,
            doc.version,
            doc.sha[:12],
            len(snapshot),
        )
        self._write_cache(doc)
        if self._pid == os.getpid():  # only serving processes acknowledge (not a pre-fork
            self._ack()  # master, which would look like a laggard to `push --wait`)

    def _write_cache(self, doc: Document) -> None:
        if self.cache_path is None:
            return
        data = {
            "namespace": self.namespace,
            "version": doc.version,
            "sha": doc.sha,
            "updated_at": doc.updated_at,
            "by": doc.by,
            "reason": doc.reason,
            "doc": doc.data,  # parsed from Redis: JSON already, in the order served
        }
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.cache_path)  # atomic: a reader sees the old file or the new
        except OSError as exc:
            log.error("rampup: cannot write cache file %s: %s", self.cache_path, exc)

    def _ack(self) -> None:
        try:
            self.store.ack(self._process, self.sha)
        except Exception as exc:  # an ack is best effort; the next poll repeats it
            log.debug("rampup: ack failed: %s", exc)

    # -- status ------------------------------------------------------------------------------
    def _confirmed(self) -> None:
        self._checked = time.monotonic()
        if self.status != READY:
            if self.status == STALE:
                log.warning(
                    "rampup: flag store %s is back: serving v%d (%s)",
                    self.namespace,
                    self.version,
                    self.sha[:12],
                )
            self.status, self.last_error = READY, None

    def _degraded(self, problem: str) -> None:
        new = STALE if self.sha or self.swaps else STATUS_ERROR
        if new != self.status or problem != self.last_error:
            log.error(
                "rampup: flag store %s: %s; %s",
                self.namespace,
                problem,
                f"still serving the last good flags (v{self.version}, {self.sha[:12]})"
                if new == STALE
                else "no flag is defined (reads are UNKNOWN_FLAG, not 'off')",
            )
        self.status, self.last_error = new, problem

    # -- the watcher -------------------------------------------------------------------------
    def check(self) -> bool:
        """Compare the live sha with the served one; fetch and swap if they differ.

        Returns True if a new document was swapped in. Runs in the watcher thread; raises the
        client's error when Redis is unreachable (the watcher backs off).
        """
        head = self.store.head()
        if head is None:
            self._degraded(self._missing())
            return False
        if head[1] == self.sha:
            self._confirmed()
            return False
        with self._lock:
            got = self._fetch()
            if isinstance(got, str):
                self._degraded(got)
                return False
            self._adopt(*got)
            return True

    def _fetch(self) -> tuple[Document, Snapshot] | str:
        """The live document and its compiled snapshot, or why it cannot be served. Redis
        errors propagate (the caller knows whether it is booting or watching)."""
        try:
            doc = self.store.get()
        except redis.exceptions.RedisError:
            raise
        except Exception as exc:  # not JSON, a field missing: written around the CLI
            return f"the document at {self.store.doc_key} is unreadable ({exc})"
        if doc is None:
            return self._missing()
        try:
            return doc, self._compile(doc)
        except ConfigError as exc:
            return f"the document in Redis (v{doc.version}) is invalid:\n{exc}"
        except Exception as exc:  # a loader bug must not kill the watcher
            log.exception("rampup: compiling the document in Redis failed")
            return f"the document in Redis (v{doc.version}) cannot be compiled ({exc!r})"

    def _start(self) -> None:
        with self._start_lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            if self._pid is not None:  # forked without the at-fork hook (uWSGI)
                self._reset_process_state()
            self._pid = pid
            self._reads = 1
            self._process = f"{socket.gethostname()}:{pid}"
            for callback in self._on_serving:
                try:
                    callback()
                except Exception:  # a callback must never break the first read
                    log.exception("rampup: an on_serving callback failed")
            if not self.watch:
                return
            thread = threading.Thread(
                target=_watch,
                args=(weakref.ref(self), self._stop),
                name=f"rampup-redis:{self.namespace}",
                daemon=True,
            )
            self._thread = thread
            thread.start()

    def on_serving(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` in each process when it starts serving (its first snapshot read,
        which starts the watcher), and now if this process already does. For per-process
        threads that must not run in a pre-fork master (the fleet guard)."""
        self._on_serving.append(callback)
        if self._pid == os.getpid():
            callback()

    def _reset_process_state(self, forked: bool = True) -> None:
        """Fresh locks and stop event (a lock held by the parent's watcher at fork time would
        stay held forever in the child) and, after a fork, a fresh Redis client."""
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if forked:  # a new client: the parent's sockets and locks must not be shared
            self.store = self.store.fresh()

    def _after_fork(self) -> None:
        self._reset_process_state()
        self._pid = None  # the next snapshot read starts this process's watcher
        self._reads = 0

    def close(self) -> None:
        """Stop the watcher and close the connections."""
        self._stop.set()
        _sources.discard(self)
        self.store.close()

    def __repr__(self) -> str:
        return (
            f"RedisSource({self.namespace!r}, v{self.version}, {self.status}, "
            f"{len(self._snapshot)} flags)"
        )


def _watch(ref: weakref.ref[RedisSource], stop: threading.Event) -> None:
    """The watcher loop: subscribe, refresh, then listen and poll until stopped."""
    backoff = 0.0
    while not stop.is_set():
        source = ref()
        if source is None:
            return
        pubsub = None
        try:
            pubsub = source.store.client.pubsub()
            pubsub.subscribe(source.store.channel)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # wait for the subscription to be live
                msg = pubsub.get_message(timeout=0.5)
                if msg is not None and msg["type"] == "subscribe":
                    break
            else:
                raise TimeoutError("no subscribe confirmation from Redis within 5 s")
            source.check()  # a write may have happened while we were not subscribed
            source._ack()
            backoff = 0.0
            next_poll = time.monotonic() + _jitter(source.interval)
            del source  # hold the source only while working, so it can be collected
            while not stop.is_set():
                msg = pubsub.get_message(timeout=max(0.0, next_poll - time.monotonic()))
                source = ref()
                if source is None:
                    return
                if msg is not None and msg["type"] == "message":
                    _, _, sha = bytes(msg["data"]).decode().partition(" ")
                    if sha != source.sha:
                        source.check()
                if time.monotonic() >= next_poll:
                    pubsub.ping()  # a dead subscription fails here or at the next read
                    source.check()  # catches a write that did not publish
                    source._ack()  # the heartbeat `rampup status` and `push --wait` read
                    next_poll = time.monotonic() + _jitter(source.interval)
                del source
        except Exception as exc:
            source = ref()
            if source is None or stop.is_set():  # closed meanwhile: not an outage
                return
            source._degraded(f"Redis is unreachable ({exc})")
            del source
            backoff = min(max(0.1, backoff * 2), _MAX_BACKOFF)
            stop.wait(_jitter(backoff))
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):  # closing a dead connection
                    pubsub.close()


_sources: weakref.WeakSet[RedisSource] = weakref.WeakSet()


def live_sources() -> list[RedisSource]:
    """Every RedisSource of this process (for health checks and telemetry)."""
    return list(_sources)


def _after_fork_in_child() -> None:
    for source in list(_sources):
        source._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
