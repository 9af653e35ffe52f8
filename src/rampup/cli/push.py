"""``rampup push FILE --redis URL``: validate a flag file, show what changes, and write it to
the store with compare-and-set; ``--wait`` until every live process serves it."""

from __future__ import annotations

import argparse
from typing import Any

from .. import _files
from ..config import load
from . import CommandError
from ._store import (
    REFUSED,
    add_store_args,
    describe,
    diff_lines,
    open_store,
    wait_for_acks,
)


def register(sub: Any) -> None:
    """Add the ``push`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "push",
        allow_abbrev=False,
        help="write a flag file to the Redis store",
        description="Validate FILE with the runtime's loader, print a diff against the live "
        "version, then write it with compare-and-set and publish it. Exit 1: invalid file; "
        "3: the live version is not the one expected; 4: refused (it would undo a kill); "
        "5: --wait timed out.",
    )
    p.add_argument("file")
    add_store_args(p)
    p.add_argument(
        "--expect",
        type=int,
        metavar="VERSION",
        help="write only if the live version is VERSION (0: none yet); default: the version "
        "this diff was made against",
    )
    p.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="wait until every live process serves the new version; exit 5 naming laggards",
    )
    p.add_argument(
        "--force", action="store_true", help="push even if it lifts a kill switch the live has"
    )
    p.add_argument("--reason", default="", help="why (recorded in the history)")
    p.add_argument("--by", help="who (default: user@host)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate, diff, refuse an undone kill, write with compare-and-set, publish, wait."""
    load(args.file)  # every located problem (file, line) -> ConfigError -> exit 1
    data, _, problem = _files.read(args.file)
    if problem is not None:  # pragma: no cover - load() read the same file a moment ago
        raise CommandError(str(problem))
    from ..store import canonical, sha_of, undone_kills

    with open_store(args) as store:
        live = store.get()
        sha = sha_of(canonical(data))
        where = f"namespace {store.namespace!r}"
        print(f"{where}: live {describe(live) if live else '(nothing pushed yet)'}")
        print(f"{args.file}: sha {sha[:12]}")
        if live is not None and live.sha == sha:
            print("no change: the file is what the store serves")
            return 0 if not args.wait else wait_for_acks(store, sha, args.wait)
        for line in diff_lines(live.data if live else None, data):
            print(line)
        undone = undone_kills(live, data)
        if undone and not args.force:
            raise CommandError(
                f"refusing to push: the live {describe(live)} kills {', '.join(undone)} and "
                f"{args.file} does not. Add `killed = true` to "
                f"{'that flag' if len(undone) == 1 else 'those flags'} in the file to keep "
                "the kill, run `rampup unkill` first, or pass --force to lift it",
                REFUSED,
            )
        if args.dry_run:
            print("dry run: nothing written")
            return 0
        expect = args.expect if args.expect is not None else (live.version if live else 0)
        written = store.push(
            data, reason=args.reason or f"push {args.file}", by=args.by, expect=expect
        )
        print(f"pushed {describe(written)}")
        return wait_for_acks(store, written.sha, args.wait) if args.wait else 0
