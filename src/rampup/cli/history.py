"""``rampup history`` and ``rampup rollback [--to VERSION]``: the last versions of the store's
document, and pushing an earlier one again."""

from __future__ import annotations

import argparse
from typing import Any

from . import CommandError
from ._common import emit_json
from ._store import REFUSED, add_store_args, describe, diff_lines, open_store, wait_for_acks, when


def register(sub: Any) -> None:
    """Add the ``history`` and ``rollback`` commands to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "history",
        allow_abbrev=False,
        help="list the store's last versions",
        description="List the last versions of the namespace's flag document, newest first.",
    )
    add_store_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_history)

    p = sub.add_parser(
        "rollback",
        allow_abbrev=False,
        help="push an earlier version again",
        description="Push an earlier version (the previous one by default) as a new version.",
    )
    add_store_args(p)
    p.add_argument("--to", type=int, metavar="VERSION", help="the version to go back to")
    p.add_argument("--reason", default="", help="why (recorded in the history)")
    p.add_argument("--by", help="who (default: user@host)")
    p.add_argument("--force", action="store_true", help="even if it lifts a kill switch")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait for every live process")
    p.set_defaults(run=run_rollback)


def run_history(args: argparse.Namespace) -> int:
    """Print the history, newest first, with the kill switches each version holds."""
    with open_store(args) as store:
        history = store.history()
    if args.json:
        emit_json(
            [
                {
                    "version": d.version,
                    "sha": d.sha,
                    "updated_at": when(d.updated_at),
                    "by": d.by,
                    "reason": d.reason,
                    "killed": sorted(d.killed()),
                }
                for d in history
            ]
        )
        return 0
    if not history:
        print("no history: nothing was pushed to this namespace")
    for d in history:
        killed = f"  killed: {', '.join(sorted(d.killed()))}" if d.killed() else ""
        print(f"v{d.version}  {d.sha[:12]}  {when(d.updated_at)}  {d.by}  {d.reason}{killed}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    """Push an earlier version again; refuse to lift a live kill without --force."""
    from ..store import undone_kills

    with open_store(args) as store:
        history = store.history()
        target = next((d for d in history if d.version == args.to), None) if args.to else None
        if target is None and args.to is None and len(history) >= 2:
            target = history[1]
        live = history[0] if history else None
        if target is not None and live is not None:
            for line in diff_lines(live.data, target.data):
                print(line)
            undone = undone_kills(live, target.data)
            if undone and not args.force:
                raise CommandError(
                    f"refusing to roll back: the live {describe(live)} kills "
                    f"{', '.join(undone)} and v{target.version} does not; pass --force to "
                    "lift the kill",
                    REFUSED,
                )
        written = store.rollback(args.to, reason=args.reason, by=args.by)
        print(f"rolled back: {describe(written)}")
        return wait_for_acks(store, written.sha, args.wait) if args.wait else 0
