"""Shared fixtures: flag files on disk, compiled snapshots, a cyclic-garbage counter."""

from __future__ import annotations

import gc
from collections.abc import Callable
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


GarbageCounter = Callable[[Callable[[int], None]], int]


@pytest.fixture
def cyclic_garbage() -> GarbageCounter:
    """``count(one)``: the objects the garbage collector frees after ``one(i)`` ran for
    i in 0..99 with the collector off, i.e. the reference cycles 100 requests left behind."""

    def count(one: Callable[[int], None]) -> int:
        gc.collect()
        gc.disable()
        try:
            for i in range(100):
                one(i)
            return gc.collect()
        finally:
            gc.enable()

    return count
