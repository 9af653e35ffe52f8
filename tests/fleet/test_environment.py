"""The flag file environment (issue 19) applies to documents from the Redis store too: the
``environment`` option reaches ``RedisSource`` through ``as_source`` and every adapter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rampup import Subject
from rampup.redis_source import RedisSource
from rampup.sources import as_source
from rampup.store import Store

DOC = {
    "flags": {"new-checkout": {"default": "off"}},
    "environments": {"production": {"flags": {"new-checkout": {"default": "on"}}}},
}


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    s = Store(redis_url, "shop")
    yield s
    s.close()


def served(source: RedisSource) -> str | None:
    return source.snapshot.evaluate("new-checkout", Subject("u-1")).variant


def test_the_environment_option_overlays_the_stored_document(store: Store, redis_url: str) -> None:
    """as_source("redis://...", env="production") serves the production overlay; without it
    the base flags are served."""
    store.push(DOC)
    production = as_source(f"{redis_url}?namespace=shop", watch=False, env="production")
    base = as_source(f"{redis_url}?namespace=shop", watch=False)
    try:
        assert isinstance(production, RedisSource)
        assert isinstance(base, RedisSource)
        assert served(production) == "on"
        assert served(base) == "off"
        assert production.snapshot.environment == "production"
    finally:
        production.close()
        base.close()
