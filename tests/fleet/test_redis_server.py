"""The redis-server helper the fleet tests stand on."""

from __future__ import annotations

import redis

from redis_server import RedisServer, ping


def test_server_answers_ping_and_stops_by_pid(redis_server: RedisServer) -> None:
    """The helper's server answers PING; stop() ends that PID; start() brings it back empty."""
    client = redis.Redis.from_url(redis_server.url)
    client.set("k", "v")
    pid = redis_server.pid
    assert pid is not None
    assert ping(redis_server.port)
    redis_server.stop()
    assert not ping(redis_server.port)
    redis_server.start()
    assert redis_server.pid != pid
    assert client.get("k") is None  # restarted empty: nothing was persisted
    client.close()
