"""Dashboard fixtures: the example flag file as a dict, a real redis-server holding it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rampup._files import read

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flags.toml"


def example_doc() -> dict[str, Any]:
    """The example flag file, plus a guarded rollout, as a document to push."""
    data, _, problem = read(EXAMPLE)
    assert problem is None
    data["flags"]["fast-search"] = {
        "description": "Search on the new index",
        "rules": [{"rollout": {"stages": [1, 5, 25, 100], "stage": 1, "hold": "10m"}}],
    }
    data["flags"]["winter-banner"] = {
        "description": "The winter sale banner on every page",
        "rules": [{"serve": "on"}],
    }
    return data


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A fresh redis-server on 127.0.0.1 (skipped where redis-server is missing)."""
    pytest.importorskip("redis")
    from redis_server import REDIS_SERVER, RedisServer

    if not os.path.exists(REDIS_SERVER):  # pragma: no cover - CI installs it
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """The URL of the test's redis-server."""
    url: str = redis_server.url
    return url


@pytest.fixture
def store_url(redis_url: str) -> Iterator[str]:
    """A Redis URL whose namespace ``dashboard-tests`` holds the example document as v1."""
    from rampup.store import Store

    # a namespace of its own: RedisSources are registered process-wide (store telemetry reads
    # them), so a dashboard test's source must not pass for another test's "shop"
    store = Store(redis_url, "dashboard-tests")
    store.push(example_doc(), reason="first push", by="ci")
    store.close()
    return f"{redis_url}?namespace=dashboard-tests"
