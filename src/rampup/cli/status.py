"""``rampup status``: the live version of the store's document and every process serving it
(its sha and when it was last heard from; stale ones marked)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._common import emit_json
from ._store import add_store_args, describe, open_store, when


def register(sub: Any) -> None:
    """Add the ``status`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "status",
        allow_abbrev=False,
        help="show the live version and the processes serving it",
        description="Show the live version and every process that acknowledged one; a "
        "process not heard from in 10 s is marked stale.",
    )
    add_store_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the live document and the processes, current ones first."""
    from ..store import LIVE_SECONDS

    with open_store(args) as store:
        store.forget()  # processes silent for an hour are gone (restarted workers, old pods)
        live = store.get()
        acks = store.acks()
    now = time.time()
    rows = [
        {
            "process": a.process,
            "sha": a.sha,
            "current": live is not None and a.sha == live.sha,
            "age": round(a.age(now), 1),
            "stale": a.age(now) > LIVE_SECONDS,
        }
        for a in acks
    ]
    if args.json:
        emit_json(
            {
                "namespace": store.namespace,
                "live": None
                if live is None
                else {
                    "version": live.version,
                    "sha": live.sha,
                    "updated_at": when(live.updated_at),
                    "by": live.by,
                    "reason": live.reason,
                    "killed": sorted(live.killed()),
                },
                "processes": rows,
            }
        )
        return 0
    print(f"namespace {store.namespace!r}: {describe(live) if live else 'nothing pushed yet'}")
    if live is not None and live.killed():
        print(f"killed: {', '.join(sorted(live.killed()))}")
    if not rows:
        print("no process has acknowledged a version yet")
    for r in rows:
        mark = "current" if r["current"] else "BEHIND"
        if r["stale"]:
            mark += ", stale (not heard from; gone?)"
        print(f"  {r['process']:<32} {r['sha'][:12]:<12}  {r['age']:>7.1f} s ago  {mark}")
    return 0
