"""``rampup check FILE``: validate a flag file; exit 1 listing every located problem.

Every environment is validated (a load checks them all); ``--env`` also requires that one to
exist. Temporary flags past their ``expires`` date are warnings, errors with ``--strict``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any

from .._files import Locator, read
from ..config import environments_of, load
from ..engine import Snapshot
from ..errors import ConfigError, Problem
from ..rollout import find_rollout
from ._common import add_env, emit_json


def register(sub: Any) -> None:
    """Add the ``check`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "check",
        help="validate a flag file",
        description="Validate a flag file (every environment in it). Exit 0 if valid, 1 "
        "listing every problem. Expired temporary flags are warnings, errors with --strict.",
    )
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on expired temporary flags too"
    )
    add_env(p)
    p.set_defaults(run=run)


def expired(snapshot: Snapshot, file: str, today: date | None = None) -> list[Problem]:
    """A located warning per temporary flag whose ``expires`` date has passed."""
    today = today or datetime.now(timezone.utc).date()
    due = [
        (key, flag)
        for key, flag in snapshot.flags.items()
        if flag.kind == "temporary" and flag.expires is not None and flag.expires < today
    ]
    if not due:
        return []
    _, text, _ = read(file)
    locator = Locator(text)
    return [
        Problem(
            file,
            f"flags.{key}.expires",
            f"temporary flag expired on {flag.expires}"
            + (f" (owner: {flag.owner})" if flag.owner else ""),
            "remove the flag and its reads (`rampup refs` lists them), or move the date",
            locator.locate(["flags", key, "expires"]),
        )
        for key, flag in due
    ]


def _problems_json(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [
        {
            "file": p.file,
            "line": p.line,
            "where": p.where,
            "message": p.message,
            "hint": p.hint or None,
        }
        for p in problems
    ]


def run(args: argparse.Namespace) -> int:
    """Validate ``args.file`` and print a summary; an invalid file exits 1 listing every problem."""
    try:
        snapshot = load(args.file, env=args.env)
    except ConfigError as exc:
        if args.json:
            emit_json({"ok": False, "problems": _problems_json(exc.problems)})
            return 1
        raise
    data, _, _ = read(args.file)
    envs = environments_of(data)
    warnings = expired(snapshot, args.file)
    ok = not (args.strict and warnings)
    killed = sorted(k for k, f in snapshot.flags.items() if f.killed)
    rollouts = {
        k: found[1].share
        for k, f in sorted(snapshot.flags.items())
        if not f.killed and (found := find_rollout(f)) is not None
    }
    if args.json:
        out: dict[str, Any] = {
            "ok": ok,
            "flags": len(snapshot.flags),
            "segments": len(snapshot.segments),
            "killed": killed,
        }
        if rollouts:  # flag -> current share (%), only when the file has guarded rollouts
            out["rollouts"] = rollouts
        # Only when present: files without these fields keep the output they had.
        if envs:
            out["environments"] = envs
        if snapshot.environment:
            out["environment"] = snapshot.environment
        if warnings:
            out["expired"] = _problems_json(warnings)
        emit_json(out)
        return 0 if ok else 1
    label = "error" if args.strict else "warning"
    for w in warnings:
        print(f"{label}: {w}")
    print(
        f"{args.file}: {'OK' if ok else 'FAILED (--strict: expired flags)'} "
        f"({len(snapshot.flags)} flags, {len(snapshot.segments)} segments"
        + (f"; environments: {', '.join(envs)}" if envs else "")
        + (f"; checked as {snapshot.environment}" if snapshot.environment else "")
        + (f"; killed: {', '.join(killed)}" if killed else "")
        + (
            "; guarded rollouts: " + ", ".join(f"{k} at {s:g} %" for k, s in rollouts.items())
            if rollouts
            else ""
        )
        + ")"
    )
    return 0 if ok else 1
