"""Shared fixtures: flag files on disk and compiled snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

import rampup

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flags.toml"


@pytest.fixture
def example_path() -> Path:
    """The bundled example flag file."""
    return EXAMPLE


@pytest.fixture
def example() -> rampup.Snapshot:
    """The bundled example flag file, compiled."""
    return rampup.load(EXAMPLE)
