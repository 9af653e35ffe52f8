"""``rampup schema``: print the JSON Schema of the flag file (for editors and CI)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from typing import Any

__all__ = ["register", "run", "schema_text"]


def schema_text() -> str:
    """The JSON Schema shipped in the package (``rampup/data/flags.schema.json``)."""
    return resources.files("rampup").joinpath("data/flags.schema.json").read_text("utf-8")


def register(sub: Any) -> None:
    """Add the ``schema`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "schema",
        help="print the flag file's JSON Schema",
        description="Print the JSON Schema of the flag file, e.g. "
        "`rampup schema > flags.schema.json` for editor completion.",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the schema to stdout."""
    sys.stdout.write(schema_text())
    return 0
