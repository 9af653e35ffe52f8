"""``rampup guard status FILE --counts SUMS.json`` or ``rampup guard status --redis URL``: each
guarded rollout's evidence and verdict.

With ``--redis`` (and ``--namespace``) it reads the fleet: the live document, the stage states
and the fleet's sums the processes flush (``rampup.guard_fleet``), and who evaluates.

What it reads today: the flag file (stages, current stage) and a JSON file of per-variant sums
for the current stage, ``{flag: {variant: {"requests": N, "error_subjects": X, ...}}}`` (the
keys of :class:`rampup.guard.VariantCounts`; the outcome book and the store will write it).
Without ``--counts`` every count is zero. ``--since`` says when the stage started (for the hold);
without it the stage is taken to start now. It only looks: it never kills or advances.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..errors import MissingDependency
from ..guard import Guard, StageState, StaticReader, Status
from ..rollout import find_rollout
from ..sources import StaticSource
from . import CommandError
from ._common import emit_json, load_file, parse_at
from ._store import add_store_args, open_store


def register(sub: Any) -> None:
    """Add the ``guard`` command (``guard status``) to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "guard",
        help="guarded rollouts: evidence and verdicts",
        description="Guarded rollouts. `guard status` shows each rollout's stage, counts, "
        "E (halt evidence), E_adv (advance evidence), the verdict and what it waits for.",
    )
    gsub = p.add_subparsers(dest="guard_command", metavar="SUBCOMMAND")
    gsub.required = True
    s = gsub.add_parser("status", help="each guarded rollout's evidence and verdict")
    s.add_argument("file", nargs="?", help="the flag file (not with --redis)")
    s.add_argument("--counts", metavar="SUMS.json", help="per-variant sums of the current stage")
    s.add_argument("--since", help="when the current stage started (ISO 8601; default: now)")
    s.add_argument("--at", help="evaluate at this ISO 8601 time instead of now")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    add_store_args(s)
    s.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print every guarded rollout's status; exit 0 (it only looks)."""
    if args.redis and not args.file:
        return run_fleet(args)
    if not args.file:
        raise CommandError("guard status needs a flag file, or --redis URL for the fleet", 2)
    snapshot = load_file(args.file)
    sums: dict[str, Any] = {}
    if args.counts:
        try:
            with open(args.counts, encoding="utf-8") as fh:
                sums = json.load(fh)
            reader = StaticReader(sums)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise CommandError(
                f"--counts {args.counts}: expected JSON like "
                '{"FLAG": {"on": {"requests": 100, "error_subjects": 2}, "off": {...}}} '
                f"({exc})"
            ) from None
    else:
        reader = StaticReader({})
    now = parse_at(args.at) or time.time()
    since = parse_at(args.since) or now
    states = {
        key: StageState(key, found[1].stage, since)
        for key, flag in snapshot.flags.items()
        if (found := find_rollout(flag)) is not None
    }
    statuses = Guard(StaticSource(snapshot), reader, None, states=states).status(now)
    if args.json:
        emit_json([s.to_dict() for s in statuses])
        return 0
    if not statuses:
        print(f"{args.file}: no guarded rollouts")
    for s in statuses:
        print(format_status(s))
    return 0


def run_fleet(args: argparse.Namespace) -> int:
    """The fleet's status from the store: live document, stored stage states, fleet sums."""
    if args.counts or args.since:
        raise CommandError("--counts and --since read a flag file's mode, not --redis", 2)
    with open_store(args) as store:
        try:
            from ..guard_fleet import fleet_status, holder
        except MissingDependency as exc:  # pragma: no cover - open_store checked redis-py
            raise CommandError(str(exc)) from None
        statuses = fleet_status(store, parse_at(args.at))
        evaluator = holder(store)
    if args.json:
        emit_json({"evaluator": evaluator, "flags": [s.to_dict() for s in statuses]})
        return 0
    print(
        f"namespace {store.namespace}: "
        + (f"evaluated by {evaluator}" if evaluator else "no guard evaluates now (no lock held)")
    )
    if not statuses:
        print(f"namespace {store.namespace}: no guarded rollouts")
    for s in statuses:
        print(format_status(s))
    return 0


def format_status(s: Status) -> str:
    """A few lines per flag, for people."""
    stages = ", ".join(f"[{x:g}]" if i == s.stage else f"{x:g}" for i, x in enumerate(s.stages))
    lines = [
        f"{s.flag}: stage {s.stage} ({s.treatment} {s.share:g} %) of {stages}, "
        f"{s.seconds_in_stage / 60:.0f} min in stage",
    ]
    for v in (s.treatment, s.control):
        c = s.counts[v]
        rate = f"{c.error_subjects / c.requests:.2%}" if c.requests else "-"
        lines.append(
            f"  {v:<10} {c.requests:>10,} requests {c.error_subjects:>8,} error subjects  {rate}"
        )
    lines.append(f"  E {s.e:.3g} (halt at {s.halt_at:g})  E_adv {s.e_adv:.3g} (advance at 20)")
    lines.append(f"  verdict  {s.verdict}" + (f": {s.reason}" if s.reason else ""))
    lines += [f"  waits for {w}" for w in s.waiting_for]
    return "\n".join(lines)
