"""``rampup simulate FILE [--n N]``: realized share of each variant over synthetic subjects."""

from __future__ import annotations

import argparse
from typing import Any

from ..model import Subject
from . import CommandError
from ._common import add_env, emit_json, load_file, parse_at, parse_attrs

BAR = 30


def register(sub: Any) -> None:
    """Add the ``simulate`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "simulate",
        help="share of each variant over N synthetic subjects",
        description="Evaluate every flag for N synthetic subjects (keys "
        "sim-0..sim-N-1) and print the realized share of each variant.",
    )
    p.add_argument("file")
    p.add_argument("--n", type=int, default=10_000, help="number of subjects (default 10000)")
    p.add_argument("--flag", action="append", help="only these flags")
    p.add_argument(
        "--attr",
        action="append",
        metavar="NAME=VALUE",
        help="an attribute every synthetic subject has",
    )
    p.add_argument("--at", help="simulate at this ISO 8601 time (for ramps)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_env(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the share of each variant over ``args.n`` synthetic subjects."""
    if not 1 <= args.n <= 10_000_000:
        raise CommandError("--n must be between 1 and 10,000,000", 2)
    snapshot = load_file(args.file, args.env)
    keys = args.flag or list(snapshot.flags)
    missing = [k for k in keys if k not in snapshot.flags]
    if missing:
        raise CommandError(f"no flag {', '.join(map(repr, missing))} in {args.file}")
    now = parse_at(args.at)
    attrs = parse_attrs(args.attr)
    result: dict[str, dict[str, int]] = {}
    for key in keys:
        counts = {v.name: 0 for v in snapshot.flags[key].variants}
        for i in range(args.n):
            d = snapshot.evaluate(key, Subject(f"sim-{i}", attrs), now)
            counts[d.variant or "?"] = counts.get(d.variant or "?", 0) + 1
        result[key] = counts
    if args.json:
        emit_json(
            {
                "n": args.n,
                "flags": {
                    k: {v: {"count": c, "share": c / args.n} for v, c in counts.items()}
                    for k, counts in result.items()
                },
            }
        )
        return 0
    width = max((len(v) for c in result.values() for v in c), default=4)
    for key, counts in result.items():
        flag = snapshot.flags[key]
        print(f"{key}" + ("  [KILLED]" if flag.killed else ""))
        for variant, count in counts.items():
            share = count / args.n
            bar = "#" * round(share * BAR)
            print(f"  {variant:<{width}}  {share * 100:6.2f} %  {bar:<{BAR}}  {count}")
    return 0
