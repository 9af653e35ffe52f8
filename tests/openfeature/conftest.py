"""OpenFeature tests: the SDK's global state is reset after each test; the Gherkin suites' tags
(``@spec-1.4.7``, ``@booleans``) are registered as markers so ``--strict-markers`` accepts them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("openfeature")
pytest.importorskip("pytest_bdd")

from openfeature import api


def pytest_configure(config: pytest.Config) -> None:
    """Register every tag the feature files use (pytest-bdd marks scenarios and examples)."""
    for feature in sorted((Path(__file__).parent / "features").glob("*.feature")):
        for tag in sorted(set(re.findall(r"@([\w.-]+)", feature.read_text("utf-8")))):
            config.addinivalue_line("markers", f"{tag}: a tag of the OpenFeature Gherkin suites")


def pytest_bdd_apply_tag(tag: str, function: Callable[..., object]) -> bool:
    """Gherkin tags select nothing here: every scenario runs (exclusions are explicit xfails)."""
    return True


@pytest.fixture(autouse=True)
def _fresh_openfeature() -> Iterator[None]:
    """Each test starts and ends with the SDK's defaults (no provider, hooks or context)."""
    api.shutdown()
    yield
    api.shutdown()
