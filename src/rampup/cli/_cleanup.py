"""What ``rampup refs`` says per flag about its life: owner, expiry, fully rolled out, killed
for a long time. Together with where the code reads it, that is the list of flags to delete.

How long a flag has been killed is not in the file: it is taken from ``git blame`` of its
``killed = true`` line when the flag file is in a git work tree (unknown otherwise).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._files import Locator, read
from ..engine import Snapshot

__all__ = ["FlagLife", "killed_since", "lives"]

_DAY = 86_400


@dataclass(frozen=True, slots=True)
class FlagLife:
    """One flag's owner and the reasons it may be ready to delete."""

    key: str
    owner: str
    kind: str
    expires: str | None
    #: why it is a candidate for deletion (empty: keep it)
    reasons: tuple[str, ...]


def killed_since(file: str, path: list[str | int]) -> float | None:
    """When the line at ``path`` (a ``killed`` field) was last changed, from git; None when
    the file is not in a git work tree or the line is not found."""
    _, text, problem = read(file)
    line = None if problem is not None else Locator(text).locate(path)
    if line is None:
        return None
    p = Path(file).resolve()
    try:
        out = subprocess.run(
            ["git", "blame", "--porcelain", "-L", f"{line},{line}", "--", p.name],
            cwd=p.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for row in out.stdout.splitlines():
        if row.startswith("author-time "):
            return float(row.split()[1])
    return None


def lives(
    snapshot: Snapshot,
    file: str,
    now: float,
    rolled_out: dict[str, tuple[str, str]],
    killed_days: int,
) -> list[FlagLife]:
    """Every flag's life, judged at ``now`` (epoch seconds)."""
    today = datetime.fromtimestamp(now, timezone.utc).date()
    env = snapshot.environment
    out = []
    for key, flag in snapshot.flags.items():
        reasons: list[str] = []
        if flag.kind == "temporary" and flag.expires is not None and flag.expires < today:
            reasons.append(f"expired on {flag.expires}")
        if key in rolled_out and flag.kind == "temporary":  # a permanent flag may stay
            variant, why = rolled_out[key]
            reasons.append(f"fully rolled out: {variant!r} for everyone ({why})")
        if flag.killed:
            since = (
                killed_since(file, ["environments", env, "flags", key, "killed"]) if env else None
            )
            since = since or killed_since(file, ["flags", key, "killed"])
            days = None if since is None else int((now - since) // _DAY)
            if days is None:
                reasons.append("killed (since when unknown: not in git)")
            elif days >= killed_days:
                reasons.append(f"killed for {days} days")
        expires = flag.expires.isoformat() if flag.expires else None
        out.append(FlagLife(key, flag.owner, flag.kind, expires, tuple(reasons)))
    return out


def as_json(life: FlagLife) -> dict[str, Any]:
    """JSON-ready data."""
    return {
        "key": life.key,
        "owner": life.owner or None,
        "kind": life.kind,
        "expires": life.expires,
        "delete_candidate": bool(life.reasons),
        "reasons": list(life.reasons),
    }
