"""The store's writer API against a real redis-server: compare-and-set, history, kill, rollback,
acknowledgements."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from rampup import ConfigError
from rampup.errors import StoreConflict, StoreError
from rampup.store import HISTORY_LENGTH, Store, canonical, parse_url, sha_of, undone_kills

from .helpers import doc


@pytest.fixture
def store(redis_url: str) -> Store:
    s = Store(redis_url, "shop")
    yield s
    s.close()


def test_push_then_get_round_trips_with_version_and_sha(store: Store) -> None:
    """A push stores the canonical document as version 1, with its sha, author and reason."""
    written = store.push(doc(), reason="first", by="ci")
    live = store.get()
    assert live is not None
    assert (live.version, live.sha, live.by, live.reason) == (1, written.sha, "ci", "first")
    assert live.data == doc()
    assert store.head() == (1, written.sha)
    assert live.sha == sha_of(canonical(doc()))


def test_keys_share_one_hash_tag(store: Store) -> None:
    """Every key of a namespace carries the {rampup:NS} hash tag (one Redis Cluster slot)."""
    store.push(doc())
    keys = {k.decode() for k in store.client.keys("*")}
    assert keys == {"{rampup:shop}:doc", "{rampup:shop}:history"}
    assert store.channel.startswith("{rampup:shop}")


def test_sha_ignores_key_order() -> None:
    """Two documents that mean the same have the same sha."""
    a = {"version": 1, "flags": {"x": {"default": "off"}, "y": {"default": "on"}}}
    b = {"flags": {"y": {"default": "on"}, "x": {"default": "off"}}, "version": 1}
    assert sha_of(canonical(a)) == sha_of(canonical(b))


def test_canonical_text_is_the_same_with_or_without_a_converted_copy() -> None:
    """A plain JSON document is written as it is, anything else through ``_jsonable`` (dates,
    tuples, keys that are not str, other mappings): the text is what the copy gives."""
    import json
    from collections import OrderedDict
    from datetime import date, datetime, timezone
    from types import MappingProxyType

    from rampup.store import _is_plain, _jsonable

    def slow(data: object) -> str:
        return json.dumps(
            _jsonable(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    plain = {"version": 1, "flags": {"b": {"default": "on", "w": [1, 2.5, None, True, "é"]}}}
    converted = [
        {"flags": {"x": {"until": datetime(2030, 1, 2, tzinfo=timezone.utc)}}},
        {"flags": {"x": {"on": date(2030, 1, 2), "tags": ("a", "b")}}},
        {"flags": {True: {"default": "on"}, None: {}, 2: {}, 10: {}}},
        {"flags": OrderedDict(x={"default": "on"})},
        {"flags": MappingProxyType({"x": {"default": "on"}})},
    ]
    assert _is_plain(plain)
    assert canonical(plain) == slow(plain)
    for data in converted:
        assert not _is_plain(data)
        assert canonical(data) == slow(data)


def test_an_update_leaves_no_trace_of_its_edit_in_what_it_read(store: Store) -> None:
    """An update edits its own parse of the live document: a refused edit writes nothing, and
    the next update starts from the live document again."""
    store.push(doc())
    before = store.get()

    def refused(data: dict[str, object]) -> dict[str, object]:
        data["flags"]["dark-mode"]["killed"] = True  # type: ignore[index]
        raise StoreError("changed my mind")

    with pytest.raises(StoreError, match="changed my mind"):
        store.update(refused, reason="test")
    assert store.get() == before
    after = store.kill("new-checkout", reason="test")
    assert after.killed() == {"new-checkout"}
    assert after.data == store.get().data  # type: ignore[union-attr]


def test_compare_and_set_conflict_names_the_last_writer(store: Store) -> None:
    """A push expecting an older version fails with StoreConflict naming who wrote last."""
    store.push(doc(), by="alice")
    store.push(doc(extra="x"), by="bob", reason="add x", expect=1)
    with pytest.raises(StoreConflict, match="bob") as info:
        store.push(doc(extra="y"), by="carol", expect=1)
    assert (info.value.current, info.value.by, info.value.reason) == (2, "bob", "add x")
    assert store.head()[0] == 2


def test_expect_zero_means_no_document_yet(store: Store) -> None:
    """--expect 0 succeeds on an empty namespace and conflicts once something was pushed."""
    store.push(doc(), expect=0)
    with pytest.raises(StoreConflict):
        store.push(doc(), expect=0)


def test_invalid_document_is_refused_and_nothing_written(store: Store) -> None:
    """The runtime's loader validates a push; an invalid document never reaches Redis."""
    bad = {"version": 1, "flags": {"x": {"default": "maybe"}}}
    with pytest.raises(ConfigError):
        store.push(bad)
    assert store.get() is None


def test_history_keeps_the_last_20_versions_newest_first(store: Store) -> None:
    """After 22 pushes the history holds versions 22..3."""
    for i in range(22):
        store.push(doc(extra=f"f{i}"))
    versions = [d.version for d in store.history()]
    assert versions == list(range(22, 22 - HISTORY_LENGTH, -1))


def test_kill_and_unkill_change_only_the_kill_switch(store: Store) -> None:
    """kill sets killed=true on one flag as a new version; unkill removes it."""
    store.push(doc())
    killed = store.kill("new-checkout", reason="errors", by="oncall")
    assert killed.killed() == {"new-checkout"}
    assert (killed.version, killed.reason, killed.by) == (2, "errors", "oncall")
    back = store.unkill("new-checkout", reason="fixed")
    assert back.killed() == set()
    assert back.data == doc()


def test_kill_of_an_unknown_flag_lists_the_known_ones(store: Store) -> None:
    """Killing a flag the document does not define fails, naming the flags it has."""
    store.push(doc())
    with pytest.raises(StoreError, match="dark-mode"):
        store.kill("nope", reason="x")


def test_kill_without_a_document_says_to_push_first(store: Store) -> None:
    """Killing in an empty namespace fails with a message saying to push first."""
    with pytest.raises(StoreError, match="push one first"):
        store.kill("x", reason="x")


def test_concurrent_kills_both_land_through_retry(redis_url: str) -> None:
    """Two writers killing different flags at once both succeed (compare-and-set retries)."""
    Store(redis_url, "shop").push(doc())
    errors: list[BaseException] = []

    def kill(flag: str) -> None:
        s = Store(redis_url, "shop")
        try:
            for _ in range(5):
                s.kill(flag, reason="race")
                s.unkill(flag, reason="race")
            s.kill(flag, reason="race")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=kill, args=(f,)) for f in ("new-checkout", "dark-mode")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    live = Store(redis_url, "shop").get()
    assert live is not None
    assert live.killed() == {"new-checkout", "dark-mode"}
    assert live.version == 1 + 2 * 11


def test_rollback_pushes_an_earlier_version_again(store: Store) -> None:
    """rollback() re-pushes the previous version; rollback(to=N) that version."""
    first = store.push(doc())
    store.push(doc(extra="x"))
    store.push(doc(extra="y"))
    back = store.rollback(reason="bad deploy")
    assert back.version == 4
    assert back.sha == store.history()[2].sha  # v2's content
    assert back.reason == "rollback to v2: bad deploy"
    assert store.rollback(to=1).sha == first.sha


def test_rollback_to_a_version_not_kept_lists_the_kept_ones(store: Store) -> None:
    """An unknown --to version fails, naming the versions the history holds."""
    store.push(doc())
    with pytest.raises(StoreError, match="kept: 1"):
        store.rollback(to=7)
    with pytest.raises(StoreError, match="nothing to roll back"):
        store.rollback()


def test_push_publishes_version_and_sha_unless_told_not_to(store: Store) -> None:
    """Each write publishes "version sha" on the channel; publish=False writes silently."""
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.channel)
    pubsub.get_message(timeout=1)
    written = store.push(doc())
    msg = None
    for _ in range(50):
        msg = pubsub.get_message(timeout=0.1)
        if msg:
            break
    assert msg is not None
    assert msg["data"].decode() == f"1 {written.sha}"
    store.push(doc(extra="x"), publish=False)
    assert pubsub.get_message(timeout=0.3) is None
    assert store.head()[0] == 2
    pubsub.close()


def test_acks_record_process_sha_and_time_and_old_ones_are_forgotten(store: Store) -> None:
    """ack() records host:pid -> sha, time; live() keeps recent ones; forget() drops old ones."""
    now = time.time()
    store.ack("h:1", "abc", at=now)
    store.ack("h:2", "def", at=now - 100)
    acks = {a.process: a for a in store.acks()}
    assert (acks["h:1"].sha, acks["h:2"].sha) == ("abc", "def")
    assert [a.process for a in store.live()] == ["h:1"]
    assert store.forget(older_than=50) == 1
    assert [a.process for a in store.acks()] == ["h:1"]


def test_undone_kills_lists_kills_the_new_document_drops(store: Store) -> None:
    """A document that no longer kills a flag the live one kills is reported."""
    live = store.push(doc(killed=("new-checkout",)))
    assert undone_kills(live, doc()) == ["new-checkout"]
    assert undone_kills(live, doc(killed=("new-checkout",))) == []
    assert undone_kills(None, doc()) == []


def test_toml_dates_are_stored_as_iso_strings_the_loader_reads(store: Store) -> None:
    """A document with TOML datetimes (a ramp) is stored as JSON and still loads."""
    import datetime as dt

    from rampup import load

    data = doc()
    data["flags"]["new-checkout"]["rules"] = [
        {
            "ramp": [
                {
                    "from": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                    "split": {"on": 5, "off": 95},
                }
            ]
        }
    ]
    written = store.push(data)
    assert written.data["flags"]["new-checkout"]["rules"][0]["ramp"][0]["from"].startswith(
        "2026-01-01"
    )
    assert len(load(written.data)) == 2


def test_parse_url_takes_the_namespace_out_of_the_query() -> None:
    """The namespace query parameter is rampup's; other parameters stay for redis-py."""
    assert parse_url("redis://h:6379/0?namespace=shop") == ("redis://h:6379/0", "shop")
    assert parse_url("rediss://:pw@h/1?namespace=a&ssl_cert_reqs=none") == (
        "rediss://:pw@h/1?ssl_cert_reqs=none",
        "a",
    )
    assert parse_url("redis://h") == ("redis://h", None)
    with pytest.raises(ValueError, match="redis://"):
        parse_url("http://h")


def test_store_accepts_a_client(redis_url: str) -> None:
    """A redis.Redis client can be given instead of a URL."""
    client = redis.Redis.from_url(redis_url)
    s = Store(client, "ns")
    s.push(doc())
    assert s.get() is not None
    client.close()
