"""``rampup check FILE``: validate a flag file; exit 1 listing every located problem."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import load
from ..errors import ConfigError
from ..rollout import find_rollout
from ._common import emit_json


def register(sub: Any) -> None:
    """Add the ``check`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "check",
        help="validate a flag file",
        description="Validate a flag file. Exit 0 if valid, 1 listing every problem.",
    )
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate ``args.file`` and print a summary; an invalid file exits 1 listing every problem."""
    try:
        snapshot = load(args.file)
    except ConfigError as exc:
        if args.json:
            emit_json(
                {
                    "ok": False,
                    "problems": [
                        {
                            "file": p.file,
                            "line": p.line,
                            "where": p.where,
                            "message": p.message,
                            "hint": p.hint or None,
                        }
                        for p in exc.problems
                    ],
                }
            )
            return 1
        raise
    killed = sorted(k for k, f in snapshot.flags.items() if f.killed)
    rollouts = {
        k: found[1].share
        for k, f in sorted(snapshot.flags.items())
        if not f.killed and (found := find_rollout(f)) is not None
    }
    if args.json:
        data: dict[str, Any] = {
            "ok": True,
            "flags": len(snapshot.flags),
            "segments": len(snapshot.segments),
            "killed": killed,
        }
        if rollouts:  # flag -> current share (%), only when the file has guarded rollouts
            data["rollouts"] = rollouts
        emit_json(data)
    else:
        print(
            f"{args.file}: OK ({len(snapshot.flags)} flags, {len(snapshot.segments)} segments"
            + (f"; killed: {', '.join(killed)}" if killed else "")
            + (
                "; guarded rollouts: " + ", ".join(f"{k} at {s:g} %" for k, s in rollouts.items())
                if rollouts
                else ""
            )
            + ")"
        )
    return 0
