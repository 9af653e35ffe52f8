"""Helpers shared by the store commands (push, kill, unkill, rollback, history, status):
the ``--redis``/``--namespace`` options, opening the store, turning its errors into exit codes,
the diff printed before a write and ``--wait``.

Exit codes: 1 invalid input or an unreachable store, 2 usage, 3 a compare-and-set conflict,
4 a push refused because it would undo a kill, 5 ``--wait`` timed out (laggards named).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ..errors import MissingDependency
from . import CommandError

__all__ = [
    "CONFLICT",
    "REFUSED",
    "TIMED_OUT",
    "add_store_args",
    "describe",
    "diff_lines",
    "open_store",
    "wait_for_acks",
    "when",
]

CONFLICT = 3
REFUSED = 4
TIMED_OUT = 5


def add_store_args(p: argparse.ArgumentParser) -> None:
    """``--redis URL`` (default ``$RAMPUP_REDIS_URL``) and ``--namespace NS``."""
    p.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("RAMPUP_REDIS_URL"),
        help="the store, e.g. redis://host:6379/0 (default: $RAMPUP_REDIS_URL)",
    )
    p.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace (default: ?namespace= in the URL, else 'default')",
    )


@contextmanager
def open_store(args: argparse.Namespace) -> Iterator[Any]:
    """The store named by ``--redis``/``--namespace``; its errors become exit codes."""
    if not args.redis:
        raise CommandError("no store: pass --redis URL or set RAMPUP_REDIS_URL", 2)
    try:
        from ..store import Store
    except MissingDependency as exc:
        raise CommandError(str(exc)) from None
    import redis

    from ..errors import StoreConflict, StoreError

    try:
        store = Store(args.redis, args.namespace or "default")
    except ValueError as exc:
        raise CommandError(f"--redis: {exc}", 2) from None
    if args.namespace:
        store = Store(store.client, args.namespace)
    try:
        yield store
    except StoreConflict as exc:
        raise CommandError(str(exc), CONFLICT) from None
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    except redis.exceptions.RedisError as exc:
        raise CommandError(
            f"cannot use Redis at {_redact(args.redis)}: {exc} (is it running? is the URL right?)"
        ) from None
    finally:
        store.close()


def _redact(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


def when(epoch: float) -> str:
    """Epoch seconds as a UTC ISO 8601 time, to the second."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(doc: Any) -> str:
    """``v3 (sha 1a2b3c4d5e6f, 2026-12-01T09:00:00Z by alice: reason)``"""
    why = f": {doc.reason}" if doc.reason else ""
    return f"v{doc.version} (sha {doc.sha[:12]}, {when(doc.updated_at)} by {doc.by}{why})"


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def diff_lines(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """A readable diff of two flag documents, per flag and segment; kill switches that flip
    come first, marked ``!!``."""
    old = old or {}
    kills: list[str] = []
    lines: list[str] = []
    for kind in ("flags", "segments"):
        before, after = _table(old, kind), _table(new, kind)
        noun = kind[:-1]
        for key in sorted(set(before) | set(after)):
            a, b = before.get(key), after.get(key)
            if a == b:
                continue
            if a is None:
                lines.append(f"  + {noun} {key} (added)")
            elif b is None:
                lines.append(f"  - {noun} {key} (removed)")
            else:
                fields = sorted(
                    f
                    for f in set(a) | set(b)
                    if f != "killed" and a.get(f) != b.get(f)
                    if isinstance(a, Mapping) and isinstance(b, Mapping)
                )
                if fields:
                    lines.append(f"  ~ {noun} {key}: {', '.join(fields)} changed")
            if kind == "flags":
                was = isinstance(a, Mapping) and a.get("killed") is True
                now = isinstance(b, Mapping) and b.get("killed") is True
                if now and not was:
                    kills.append(f"  !! KILL   {key}: this push kills it (serves its off variant)")
                elif was and not now and b is not None:
                    kills.append(f"  !! UNKILL {key}: this push lifts its kill switch")
    return kills + lines or ["  (no flag or segment changed)"]


def wait_for_acks(store: Any, sha: str, seconds: float) -> int:
    """Block until every live process serves ``sha``; name the laggards on timeout."""
    deadline = time.monotonic() + seconds
    while True:
        live = store.live()
        behind = [a for a in live if a.sha != sha]
        if not behind:
            print(f"all {len(live)} live process(es) serve {sha[:12]}")
            return 0
        if time.monotonic() >= deadline:
            print(
                f"rampup: after {seconds:g} s, {len(behind)} of {len(live)} live process(es) "
                f"do not serve {sha[:12]} yet:",
                file=sys.stderr,
            )
            for a in behind:
                print(
                    f"  {a.process} serves {a.sha[:12] or '(nothing)'}, last heard "
                    f"{a.age():.1f} s ago",
                    file=sys.stderr,
                )
            return TIMED_OUT
        time.sleep(0.05)
