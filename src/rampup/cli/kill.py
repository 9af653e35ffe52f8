"""``rampup kill FLAG --reason TEXT`` and ``rampup unkill FLAG --reason TEXT``: flip a kill
switch in the store for every process, with compare-and-set and retry."""

from __future__ import annotations

import argparse
from typing import Any

from . import CommandError
from ._store import add_store_args, describe, open_store, wait_for_acks


def register(sub: Any) -> None:
    """Add the ``kill`` and ``unkill`` commands to the ``rampup`` subparsers."""
    for name, what in (
        ("kill", "kill a flag everywhere: it serves its off variant"),
        ("unkill", "lift a flag's kill switch everywhere"),
    ):
        p = sub.add_parser(name, allow_abbrev=False, help=what, description=what.capitalize() + ".")
        p.add_argument("flag")
        p.add_argument("--reason", required=True, help="why (recorded in the history)")
        add_store_args(p)
        p.add_argument("--by", help="who (default: user@host)")
        p.add_argument(
            "--wait", type=float, metavar="SECONDS", help="wait until every live process has it"
        )
        p.set_defaults(run=run, killed=name == "kill")


def run(args: argparse.Namespace) -> int:
    """Set or clear the flag's kill switch as a new version."""
    with open_store(args) as store:
        live = store.get()
        if live is None:
            raise CommandError(
                f"no flag document in namespace {store.namespace!r}: push one first "
                "(rampup push flags.toml --redis URL)"
            )
        verb = "killed" if args.killed else "unkilled"
        if (args.flag in live.killed()) == args.killed and args.flag in live.data.get("flags", {}):
            state = "killed" if args.killed else "not killed"
            print(f"{args.flag} is already {state} in {describe(live)}")
            return wait_for_acks(store, live.sha, args.wait) if args.wait else 0
        written = store.set_killed(args.flag, args.killed, reason=args.reason, by=args.by)
        print(f"{verb} {args.flag} in namespace {store.namespace!r}: {describe(written)}")
        return wait_for_acks(store, written.sha, args.wait) if args.wait else 0
