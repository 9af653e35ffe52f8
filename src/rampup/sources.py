"""Where snapshots come from: a file that hot-reloads, or a fixed snapshot.

A source exposes ``snapshot`` as a plain attribute. A reload builds a whole new Snapshot off the
request path and swaps the attribute in one assignment (atomic under the GIL), so a request
that captured the old snapshot keeps it to the end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._files import read_bytes
from ._toml import TomlCache
from .config import ENV_VAR, load, load_bytes
from .engine import Snapshot
from .errors import ConfigError

__all__ = ["FileSource", "Source", "StaticSource", "as_source"]

log = logging.getLogger("rampup")


@runtime_checkable
class Source(Protocol):
    """**Protocol:** anything with a current ``snapshot`` attribute."""

    snapshot: Snapshot


class StaticSource:
    """A source that always serves one snapshot (tests, or flags built in code)."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def __repr__(self) -> str:
        return f"StaticSource({self.snapshot.origin!r}, {len(self.snapshot)} flags)"


Signature = tuple[int, int, int, int]  # (mtime ns, size, inode, device)
#: Files up to this size are hashed at every poll; larger ones every ``_HASH_EVERY`` polls.
_HASH_ALWAYS = 1024 * 1024
_HASH_EVERY = 10
#: How many dropped flags a reload warning names.
_NAMED = 20


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()  # follows symlinks: a Kubernetes ConfigMap swaps its ..data link
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


class FileSource:
    """A flag file, reloaded in the background when it changes on disk.

    A daemon thread polls the file every ``interval`` seconds. It reloads exactly the bytes
    whose stability it checked: it reads the file, then confirms that the file's signature
    (mtime, size, inode, device) did not change during the read, else it waits for the next
    poll. Changes are seen from that signature and from a hash of the content (an edit of the
    same size with its modification time restored is still seen; files over 1 MiB are hashed
    every 10th poll when their signature is unchanged).

    A writer may pause mid-write (and a file renamed into place may still be written to), so a
    change is reloaded only once the file's content has stayed the same for ``settle`` seconds
    (default 1 s; 0 reloads at the first poll that reads it whole). A writer stalling longer
    than that gets its partial file parsed: write flag files atomically (write a temporary
    file in the same directory, then rename it over the flag file), as ``rampup`` itself does.

    An invalid edit is logged once and the last good snapshot keeps serving. A reload that
    drops flags logs a warning naming them. A reload validates and compiles only the flags
    whose definition changed (see :func:`rampup.load`'s ``previous``), and of a TOML file
    parses only the flags whose text changed (it keeps the last text's tables for that).

    The watcher thread starts at the first read of ``snapshot`` (or :meth:`start`), so a
    process that never serves a request, such as a gunicorn ``--preload`` master, runs none.
    A watcher that was running is restarted in forked children (threads do not survive
    ``fork()``).

    The first load happens in ``__init__`` and raises :class:`~rampup.ConfigError` if the file
    is invalid: a bad file must fail the deploy, not the first request.
    """

    #: ``as_source`` must not read ``snapshot`` at set-up: the first read starts the watcher
    starts_on_first_read = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        interval: float = 0.5,
        watch: bool = True,
        strict: bool = True,
        settle: float = 1.0,
        *,
        env: str | None = None,
    ):
        self.path = Path(path)
        #: the environment whose overlays apply (None: ``$RAMPUP_ENV``), read once here so
        #: that every reload serves the same environment
        self.env = _env_name(env)
        self.interval = interval
        #: seconds a changed file must stay unchanged before it is reloaded
        self.settle = settle
        #: the error of the last failed reload, None once a reload succeeds
        self.last_error: ConfigError | None = None
        self._sig: Signature | None = None
        self._hash: bytes | None = None
        self._polls = 0
        self._seen: tuple[Signature, bytes, float] | None = None  # an in-place edit settling
        self._gone_logged = False
        #: a TOML file's flags parsed at the last load, so that a reload parses what changed
        self._toml = TomlCache()
        try:
            raw, sig = self._read(report=False)
            if raw is None:  # missing, unreadable, or changing under us: load() says which
                self._snapshot: Snapshot = load(self.path, env=self.env)
            else:
                self._snapshot = load_bytes(
                    raw, str(self.path), env=self.env, toml_cache=self._toml
                )
                self._sig, self._hash = sig, _digest(raw)
        except ConfigError as exc:
            if strict:
                raise
            # Not strict: the caller cannot fail the deploy any more (Starlette builds its
            # middleware at the first request), so serve no flags (everything off) rather
            # than a 500 per request, and pick up the file as soon as it is fixed.
            log.critical(
                "rampup: flag file %s is invalid; serving every flag as off until it is fixed.\n%s",
                self.path,
                exc,
            )
            self._snapshot = Snapshot.serving_nothing(
                f"the flag file {self.path} is invalid", f"<{self.path}: invalid>"
            )
            self.last_error = exc
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # serializes reloads, never taken on the request path
        self._start_lock = threading.Lock()
        #: the watcher starts at the first snapshot read (a pre-fork master reads none)
        self._pending = watch

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot; the first read starts the watcher (when ``watch``)."""
        if self._pending:
            self._first_read()
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: Snapshot) -> None:
        self._snapshot = value

    def _first_read(self) -> None:
        with self._start_lock:  # two threads' first requests start one watcher
            if self._pending:
                self.start()

    def start(self) -> None:
        """Start (or restart, e.g. after fork) the watcher thread."""
        self._pending = False
        _watched.add(self)
        self._stop = threading.Event()
        ref = weakref.ref(self)
        t = threading.Thread(
            target=_watch,
            args=(ref, self._stop, self.interval),
            name=f"rampup-watch:{self.path.name}",
            daemon=True,
        )
        self._thread = t
        t.start()

    def close(self) -> None:
        """Stop watching the file."""
        self._pending = False
        self._stop.set()
        _watched.discard(self)

    def _read(self, report: bool = True) -> tuple[bytes | None, Signature | None]:
        """(bytes, signature) of the file, the signature unchanged across the read; (None, sig)
        when the file is missing, unreadable or was being written meanwhile. A file that
        cannot be a flag file (too large, not a regular file) is logged like an invalid one."""
        sig = _signature(self.path)
        if sig is None:
            return None, None
        raw, problem = read_bytes(self.path)
        if _signature(self.path) != sig:
            return None, sig
        if problem is not None:
            if report:
                self._invalid(ConfigError([problem]))
            return None, sig
        return raw, sig

    def _invalid(self, exc: ConfigError) -> None:
        """Log an invalid file once (until it changes to another error or is fixed)."""
        if str(exc) != str(self.last_error):
            log.error(
                "rampup: flag file %s changed but is invalid; still serving the last "
                "good flags.\n%s",
                self.path,
                exc,
            )
        self.last_error = exc

    def poll(self) -> bool:
        """Check the file once; reload if it changed and is stable. True if a reload happened."""
        with self._lock:
            self._polls += 1
            sig = _signature(self.path)
            if sig is None:
                if not self._gone_logged:
                    self._gone_logged = True
                    log.error(
                        "rampup: flag file %s is gone; still serving the last good flags",
                        self.path,
                    )
                return False
            self._gone_logged = False
            if sig == self._sig and not (sig[1] <= _HASH_ALWAYS or self._polls % _HASH_EVERY == 0):
                return False
            raw, read_sig = self._read()
            if raw is None or read_sig != sig:
                return False  # being written: the next poll reads it again
            digest = _digest(raw)
            if digest == self._hash:
                self._sig, self._seen = sig, None  # touched, not changed
                return False
            # Settle every change, renamed-in files too: a new inode can still be written in
            # place after its rename, and timestamps cannot tell (a storm served one such half).
            if self.settle > 0:
                now = time.monotonic()
                seen = self._seen
                if seen is None or seen[:2] != (sig, digest):
                    self._seen = (sig, digest, now)  # a writer may be paused mid-write
                    return False
                if now - seen[2] < self.settle:
                    return False
            self._seen = None
            return self._reload(raw, sig, digest)

    def reload(self) -> bool:
        """Reload now (no settling wait). True if the new snapshot was swapped in."""
        with self._lock:
            raw, sig = self._read()
            if raw is None or sig is None:
                log.error(
                    "rampup: flag file %s is missing or changing; still serving the last good "
                    "flags",
                    self.path,
                )
                return False
            return self._reload(raw, sig, _digest(raw))

    def _reload(self, raw: bytes, sig: Signature, digest: bytes) -> bool:
        # Remembered even when invalid: the same bad bytes are not parsed (and logged) again.
        self._sig, self._hash = sig, digest
        try:
            snapshot = load_bytes(
                raw,
                str(self.path),
                env=self.env,
                previous=self._snapshot,
                toml_cache=self._toml,
            )
        except ConfigError as exc:
            self._invalid(exc)
            return False
        except Exception:  # pragma: no cover - load_bytes turns every failure into ConfigError
            log.exception(
                "rampup: reloading %s failed; still serving the last good flags", self.path
            )
            return False
        dropped = sorted(set(self._snapshot.flags) - set(snapshot.flags))
        if dropped:
            log.warning(
                "rampup: reloading %s drops %d flag(s) that requests may still read (they will "
                "be served as unknown: off/None): %s%s",
                self.path,
                len(dropped),
                ", ".join(dropped[:_NAMED]),
                f" and {len(dropped) - _NAMED} more" if len(dropped) > _NAMED else "",
            )
        self._snapshot = snapshot
        self.last_error = None
        self.reloads += 1
        log.info("rampup: reloaded %s (%d flags)", self.path, len(snapshot))
        return True

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r}, {len(self._snapshot)} flags)"


def _watch(ref: weakref.ref[FileSource], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        source = ref()
        if source is None:
            return
        try:
            source.poll()
        except Exception:  # pragma: no cover - poll already catches what it can
            log.exception("rampup: flag file watcher failed")
        del source  # don't keep the source alive between polls


def _env_name(env: str | None) -> str:
    return (os.environ.get(ENV_VAR, "") if env is None else env).strip()


_watched: weakref.WeakSet[FileSource] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for source in list(_watched):
        source._lock = threading.Lock()
        source._start_lock = threading.Lock()
        source.start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)


def as_source(
    flags: Any, watch: bool = True, strict: bool = True, env: str | None = None
) -> Source:
    """A source from what users pass as ``flags=``: a path, a URL, a mapping, a Snapshot or a
    Source.

    ``redis://host:6379/0?namespace=shop`` (or ``rediss://`` for TLS, a password in the URL)
    is a :class:`~rampup.redis_source.RedisSource` (``rampup[redis]``); ``https://...`` or
    ``http://...`` a :class:`~rampup.http_source.HttpSource`. ``strict=False``: an invalid
    flag file serves no flags until fixed instead of raising. ``env``: the environment of a
    path, URL or mapping (None: ``$RAMPUP_ENV``); a Snapshot or a source already has one.
    """
    if isinstance(flags, str):
        scheme = flags.partition("://")[0].lower() if "://" in flags else ""
        if scheme in ("redis", "rediss"):
            from .redis_source import RedisSource  # imports redis-py: only when asked for

            return RedisSource(flags, watch=watch, env=env)
        if scheme in ("http", "https"):
            from .http_source import HttpSource

            return HttpSource(flags, watch=watch, env=env)
    if isinstance(flags, str | os.PathLike):
        return FileSource(flags, watch=watch, strict=strict, env=env)
    if isinstance(flags, Snapshot):
        return StaticSource(flags)
    if isinstance(flags, Mapping):
        return StaticSource(load(flags, env=env))
    # Not read here: such a source starts its watcher at the first read, which must happen in
    # the process that serves (a pre-fork master builds the app but never serves).
    if getattr(type(flags), "starts_on_first_read", False):
        return flags  # type: ignore[no-any-return]
    if isinstance(getattr(flags, "snapshot", None), Snapshot):
        return flags  # type: ignore[no-any-return]
    raise TypeError(
        f"flags= expects a flag file path, a redis:// or https:// URL, a mapping, a Snapshot or "
        f"a source; got "
        f"{type(flags).__name__}. Example: flags='flags.toml'"
    )
