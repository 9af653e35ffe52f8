"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

from ..config import load
from ..engine import Snapshot
from ..model import Decision
from . import CommandError

__all__ = ["add_env", "decision_dict", "emit_json", "load_file", "parse_at", "parse_attrs"]


def parse_at(text: str | None) -> float | None:
    """``--at`` as epoch seconds; a time without a zone (or a bare date) is UTC, like the file."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at expects an ISO 8601 time, got {text!r}", 2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def load_file(path: str, env: str | None = None) -> Snapshot:
    """Load a flag file in environment ``env`` (None: ``$RAMPUP_ENV``); ConfigError
    propagates (main prints it, exit 1)."""
    return load(path, env=env)


def add_env(p: Any) -> None:
    """The ``--env`` option of the commands that read a flag file."""
    p.add_argument(
        "--env",
        metavar="NAME",
        help="apply the overlays of this environment ([environments.NAME]; default $RAMPUP_ENV)",
    )


def parse_attrs(pairs: list[str] | None) -> dict[str, Any]:
    """``["plan=pro", "beta=true", "age=42"]`` -> attributes, typed like JSON scalars."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--attr expects NAME=VALUE, got {pair!r}", code=2)
        try:
            value: Any = json.loads(raw)
            if not isinstance(value, str | int | float | bool):
                value = raw
        except ValueError:
            value = raw
        out[name] = value
    return out


def decision_dict(d: Decision) -> dict[str, Any]:
    """A Decision as JSON-ready data."""
    return {
        "flag": d.key,
        "variant": d.variant,
        "value": _jsonable(d.value),
        "reason": d.reason.value,
        "rule_index": d.rule_index,
        "detail": d.detail or None,
    }


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can encode it, else its repr (e.g. a self-referencing YAML value)."""
    try:
        json.dumps(value, default=str)
    except (ValueError, TypeError):
        return repr(value)[:200]
    return value


def emit_json(data: Any) -> None:
    """Print ``data`` to stdout as indented JSON (other values as strings)."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
