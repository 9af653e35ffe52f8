"""RedisSource against a real redis-server: swaps, the poll, outages, boot order, acks."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
import redis

from rampup import Subject
from rampup.errors import StoreError
from rampup.redis_source import READY, STALE, STATUS_ERROR, RedisSource
from rampup.store import Store
from redis_server import RedisServer

from .helpers import doc, wait_until


@pytest.fixture
def store(redis_url: str) -> Store:
    s = Store(redis_url, "shop")
    yield s
    s.close()


def killed(source: RedisSource, key: str = "new-checkout") -> bool:
    flag = source.snapshot.flags.get(key)
    return flag is not None and flag.killed


def watchers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rampup-redis")]


def test_boots_from_redis_and_starts_its_watcher_at_the_first_read(
    store: Store, redis_url: str
) -> None:
    """The document is served from boot; no watcher thread runs until the first snapshot read."""
    store.push(doc())
    before = len(watchers())
    source = RedisSource(redis_url + "?namespace=shop", interval=0.1)
    try:
        assert source.status == READY
        assert source.version == 1
        assert len(watchers()) == before
        assert set(source.snapshot.flags) == {"new-checkout", "dark-mode"}
        assert len(watchers()) == before + 1
        assert source.snapshot.origin == "redis:shop@v1"
    finally:
        source.close()


def test_a_published_kill_is_swapped_in(store: Store, redis_url: str) -> None:
    """A kill pushed to the store reaches the source's snapshot."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=60)  # a long poll: pub/sub must do it
    try:
        assert not killed(source)
        wait_until(store.live)  # subscribed and acknowledged
        store.kill("new-checkout", reason="errors")
        wait_until(lambda: killed(source))
        assert source.version == 2
    finally:
        source.close()


def test_an_unpublished_write_is_caught_by_the_poll(store: Store, redis_url: str) -> None:
    """A write that publishes nothing still reaches the source through the jittered poll."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018 - starts the watcher
        store.push(doc(killed=("new-checkout",)), publish=False)
        wait_until(lambda: killed(source))
    finally:
        source.close()


def test_a_killed_subscription_is_replaced_and_refreshed(store: Store, redis_url: str) -> None:
    """After CLIENT KILL TYPE pubsub the watcher resubscribes and sees the next write."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018
        wait_until(lambda: store.client.pubsub_numsub(store.channel)[0][1] == 1)
        store.client.client_kill_filter(_type="pubsub")
        store.push(doc(killed=("new-checkout",)))
        wait_until(lambda: killed(source))
        wait_until(lambda: store.client.pubsub_numsub(store.channel)[0][1] == 1)
    finally:
        source.close()


def test_outage_keeps_the_last_good_flags_and_recovers(
    store: Store, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped: stale, last good served, one log line; back empty: still last good;
    then a new push (version 1 again, a new sha) is adopted."""
    store.push(doc(killed=("new-checkout",)))
    source = RedisSource(redis_server.url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018
        with caplog.at_level(logging.INFO, logger="rampup"):
            redis_server.stop()
            wait_until(lambda: source.status == STALE)
            assert "unreachable" in (source.last_error or "")
            assert killed(source)
            assert source.age > 0
            redis_server.start()  # back, empty
            wait_until(lambda: "no flag document" in (source.last_error or ""))
            assert source.status == STALE
            assert killed(source)
            store.push(doc(extra="after"))
            wait_until(lambda: "after" in source.snapshot.flags)
        assert source.status == READY
        assert source.version == 1
        assert not killed(source)
        messages = [r.getMessage() for r in caplog.records]
        assert any("still serving the last good flags" in m for m in messages)
        assert any("is back" in m for m in messages)
    finally:
        source.close()


def test_an_invalid_document_in_redis_keeps_the_last_good(store: Store, redis_url: str) -> None:
    """A document written around the CLI that does not validate is refused; last good serves."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018
        bad = json.dumps({"version": 1, "flags": {"x": {"default": "maybe"}}})
        store.client.hset(store.doc_key, mapping={"doc": bad, "sha": "bad", "version": 9})
        wait_until(lambda: source.status == STALE)
        assert "invalid" in (source.last_error or "")
        assert set(source.snapshot.flags) == {"new-checkout", "dark-mode"}
    finally:
        source.close()


def test_boot_falls_back_to_the_cache_file_then_the_bundled_file(
    store: Store, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Boot order: Redis, then cache_path (written after each swap), then the fallback file."""
    cache = tmp_path / "flags.cache.json"
    store.push(doc(killed=("dark-mode",)))
    first = RedisSource(redis_server.url, "shop", cache_path=cache, watch=False)
    cached = json.loads(cache.read_text())
    assert cached["sha"] == first.sha
    assert cached["doc"] == store.get().data  # type: ignore[union-attr]
    first.close()
    redis_server.stop()
    from_cache = RedisSource(redis_server.url, "shop", cache_path=cache, watch=False)
    assert from_cache.status == STALE
    assert killed(from_cache, "dark-mode")
    assert "cache" in from_cache.snapshot.origin
    bundled = tmp_path / "flags.json"
    bundled.write_text(json.dumps(doc(extra="bundled")))
    from_file = RedisSource(
        redis_server.url, "shop", cache_path=tmp_path / "none.json", fallback=bundled, watch=False
    )
    assert from_file.status == STALE
    assert "bundled" in from_file.snapshot.flags


def test_no_store_no_cache_no_fallback_serves_unknown_and_says_so(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing to serve the status is error and a critical line says reads are unknown."""
    redis_server.stop()
    with caplog.at_level(logging.CRITICAL, logger="rampup"):
        source = RedisSource(redis_server.url, "shop", watch=False)
    assert source.status == STATUS_ERROR
    assert len(source.snapshot) == 0
    assert "UNKNOWN_FLAG" in caplog.text
    assert source.snapshot.evaluate("new-checkout", None).reason.name == "UNKNOWN_FLAG"  # type: ignore[arg-type]


def test_require_store_is_fatal_at_start_up(redis_server: RedisServer) -> None:
    """require_store=True raises at start-up when the store cannot be read, or holds nothing."""
    with pytest.raises(StoreError, match="no flag document"):
        RedisSource(redis_server.url, "shop", require_store=True, watch=False)
    redis_server.stop()
    with pytest.raises(StoreError, match="unreachable"):
        RedisSource(redis_server.url, "shop", require_store=True, watch=False)


def test_each_process_acknowledges_the_sha_it_serves(store: Store, redis_url: str) -> None:
    """The source records host:pid -> sha in the acks hash after each swap."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.1)
    try:
        source.snapshot  # noqa: B018
        written = store.kill("dark-mode", reason="x")
        wait_until(lambda: [a.sha for a in store.acks()] == [written.sha])
    finally:
        source.close()


def test_no_redis_call_on_the_request_path(store: Store, redis_url: str) -> None:
    """Reading the snapshot never calls Redis from the reading thread."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.05)
    callers: list[str] = []
    original = source.store.client.execute_command

    def spy(*args: object, **kwargs: object) -> object:
        callers.append(threading.current_thread().name)
        return original(*args, **kwargs)

    source.store.client.execute_command = spy  # type: ignore[method-assign]
    try:
        for _ in range(2000):
            source.snapshot.evaluate("new-checkout", Subject("u1"))
        wait_until(lambda: callers)  # the watcher does call Redis, from its own thread
        assert threading.current_thread().name not in callers
    finally:
        source.close()


def test_a_source_accepts_a_client(store: Store, redis_url: str) -> None:
    """A redis.Redis client can be given instead of a URL."""
    store.push(doc())
    client = redis.Redis.from_url(redis_url)
    source = RedisSource(namespace="shop", client=client, watch=False)
    assert source.version == 1
    assert "RedisSource('shop', v1, ready" in repr(source)
    source.close()


def test_a_document_that_is_not_json_keeps_the_last_good(store: Store, redis_url: str) -> None:
    """Garbage written into the document hash: stale, "unreadable", last good still served;
    a process booting on it serves nothing and says why."""
    store.push(doc())
    source = RedisSource(redis_url, "shop", interval=0.05)
    try:
        source.snapshot  # noqa: B018
        store.client.hset(store.doc_key, mapping={"doc": "{not json", "sha": "junk"})
        wait_until(lambda: source.status == STALE)
        assert "unreadable" in (source.last_error or "")
        assert "new-checkout" in source.snapshot.flags
        cold = RedisSource(redis_url, "shop", watch=False)
        assert cold.status == STATUS_ERROR
        assert "unreadable" in (cold.last_error or "")
        cold.close()
    finally:
        source.close()
