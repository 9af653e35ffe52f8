"""Fleet fixtures: a real redis-server per test (see ``tests/redis_server.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest.importorskip("redis")

from redis_server import REDIS_SERVER, RedisServer

if not os.path.exists(REDIS_SERVER):  # pragma: no cover - CI installs it (.ci/run)
    pytest.skip(
        "redis-server is not installed (apt-get install redis-server)", allow_module_level=True
    )


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server on 127.0.0.1 on a free port; stopped after the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the test's redis-server."""
    return redis_server.url
