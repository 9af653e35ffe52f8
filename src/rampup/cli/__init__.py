"""The ``rampup`` command: check, explain, simulate, sign, refs, demo, guard, import, and
the store's push, kill, unkill, rollback, history and status.

Each command lives in its own module with ``register(subparsers)``; user errors exit with a
message and a status (1: the input is invalid; 2: usage), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import ConfigError

__all__ = ["CommandError", "main"]

COMMANDS = (
    "check",
    "explain",
    "simulate",
    "sign",
    "refs",
    "demo",
    # the Redis store (rampup[redis]): push; kill and unkill; history and rollback; status
    "push",
    "kill",
    "history",
    "status",
    "guard",
    "import_flagd",
    "schema",
)


class CommandError(Exception):
    """A user error: printed as ``rampup: <message>`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes no abbreviations: ``--secret abc`` must not pass for
    ``--secret-env abc`` (a secret typed on the command line would be read as a variable name
    and echoed back)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``rampup`` argument parser, with a subcommand per command module shipped."""
    parser = _Parser(prog="rampup", description="Progressive delivery for Python web apps.")
    parser.add_argument("--version", action="version", version=f"rampup {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=_Parser,
    )
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # a command not shipped in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rampup`` console script and ``python -m rampup``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"rampup: {exc}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"rampup: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `rampup simulate | head`
        return 0
    return code
