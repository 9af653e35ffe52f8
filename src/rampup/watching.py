"""What the polling sources (Redis, HTTP) share: a ``snapshot`` that starts the process's
watcher at its first read, and notices a fork that skipped the at-fork hooks.

Core layer: imports only the engine's Snapshot type.
"""

from __future__ import annotations

import os

from .engine import Snapshot

__all__ = ["StartsOnFirstRead"]


class StartsOnFirstRead:
    """Mixin: ``snapshot`` starts the watcher (``_start``, which sets ``_pid`` to the current
    process and ``_reads`` to 1) in the process that first reads it.

    The pid is compared at the first read and then every 256th: ``os.getpid()`` is a system
    call (up to a microsecond in some sandboxes), too dear for every request, and a fork that
    skipped the at-fork hooks is still caught within 256 reads. A pre-fork master that builds
    the app but never serves starts no watcher.
    """

    #: as_source() must not read it at set-up (that would start a watcher in a pre-fork master)
    starts_on_first_read = True
    _snapshot: Snapshot
    _pid: int | None
    _reads: int

    def _start(self) -> None:
        raise NotImplementedError

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot; the first read in a process starts its watcher."""
        n = self._reads = self._reads + 1
        if n & 255 == 1 and self._pid != os.getpid():
            self._start()
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: Snapshot) -> None:
        self._snapshot = value
