"""Where snapshots come from: a file that hot-reloads, or a fixed snapshot.

A source exposes ``snapshot`` as a plain attribute. A reload builds a whole new Snapshot off the
request path and swaps the attribute in one assignment (atomic under the GIL), so a request
that captured the old snapshot keeps it to the end.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .config import load
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


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileSource:
    """A flag file, reloaded in the background when it changes on disk.

    A daemon thread polls the file's (mtime, size, inode) every ``interval`` seconds, which
    catches in-place edits and write-then-rename alike, and reloads once the file has been
    stable for one poll (so a half-written file is not parsed). An invalid edit is logged once
    and the last good snapshot keeps serving. The thread is restarted in forked children
    (gunicorn ``--preload``, uWSGI), where threads do not survive ``fork()``.

    The first load happens in ``__init__`` and raises :class:`~rampup.ConfigError` if the file
    is invalid: a bad file must fail the deploy, not the first request.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        interval: float = 0.5,
        watch: bool = True,
        strict: bool = True,
    ):
        self.path = Path(path)
        self.interval = interval
        self._sig = _signature(self.path)
        #: the error of the last failed reload, None once a reload succeeds
        self.last_error: ConfigError | None = None
        try:
            self.snapshot: Snapshot = load(self.path)
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
            self.snapshot = Snapshot.build({}, {}, f"<{self.path}: invalid>")
            self.last_error = exc
        self.reloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # serializes reloads, never taken on the request path
        if watch:
            self.start()
            _watched.add(self)

    def start(self) -> None:
        """Start (or restart, e.g. after fork) the watcher thread."""
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
        self._stop.set()
        _watched.discard(self)

    def poll(self) -> bool:
        """Check the file once; reload if it changed and is stable. True if a reload happened."""
        with self._lock:
            sig = _signature(self.path)
            if sig == self._sig:
                return False
            # Wait one more poll for the file to settle before parsing it.
            if sig != getattr(self, "_pending", None):
                self._pending = sig
                return False
            self._sig = sig
            self._pending = None
            return self._reload(sig)

    def reload(self) -> bool:
        """Reload now (no stability wait). True if the new snapshot was swapped in."""
        with self._lock:
            self._sig = _signature(self.path)
            return self._reload(self._sig)

    def _reload(self, sig: tuple[int, int, int] | None) -> bool:
        if sig is None:
            log.error("rampup: flag file %s is gone; still serving the last good flags", self.path)
            return False
        try:
            snapshot = load(self.path)
        except ConfigError as exc:
            if str(exc) != str(self.last_error):
                log.error(
                    "rampup: flag file %s changed but is invalid; still serving the last "
                    "good flags.\n%s",
                    self.path,
                    exc,
                )
            self.last_error = exc
            return False
        except Exception:  # never let a loader bug kill the watcher
            log.exception(
                "rampup: reloading %s failed; still serving the last good flags", self.path
            )
            return False
        self.snapshot = snapshot
        self.last_error = None
        self.reloads += 1
        log.info("rampup: reloaded %s (%d flags)", self.path, len(snapshot))
        return True

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r}, {len(self.snapshot)} flags)"


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


_watched: weakref.WeakSet[FileSource] = weakref.WeakSet()


def _restart_after_fork() -> None:
    for source in list(_watched):
        source._lock = threading.Lock()
        source.start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)


def as_source(flags: Any, watch: bool = True, strict: bool = True) -> Source:
    """A source from what users pass as ``flags=``: a path, a URL, a mapping, a Snapshot or a
    Source.

    ``redis://host:6379/0?namespace=shop`` (or ``rediss://`` for TLS, a password in the URL)
    is a :class:`~rampup.redis_source.RedisSource` (``rampup[redis]``); ``https://...`` or
    ``http://...`` a :class:`~rampup.http_source.HttpSource`. ``strict=False``: an invalid
    flag file serves no flags until fixed instead of raising.
    """
    if isinstance(flags, str):
        scheme = flags.partition("://")[0].lower() if "://" in flags else ""
        if scheme in ("redis", "rediss"):
            from .redis_source import RedisSource  # imports redis-py: only when asked for

            return RedisSource(flags, watch=watch)
        if scheme in ("http", "https"):
            from .http_source import HttpSource

            return HttpSource(flags, watch=watch)
    if isinstance(flags, str | os.PathLike):
        return FileSource(flags, watch=watch, strict=strict)
    if isinstance(flags, Snapshot):
        return StaticSource(flags)
    if isinstance(flags, Mapping):
        return StaticSource(load(flags))
    # A property is not read here: a source may start its watcher at the first read, which
    # must happen in the process that serves (a pre-fork master builds the app, never serves).
    if isinstance(inspect.getattr_static(flags, "snapshot", None), property) or isinstance(
        getattr(flags, "snapshot", None), Snapshot
    ):
        return flags  # type: ignore[no-any-return]
    raise TypeError(
        f"flags= expects a flag file path, a redis:// or https:// URL, a mapping, a Snapshot or "
        f"a source; got "
        f"{type(flags).__name__}. Example: flags='flags.toml'"
    )
