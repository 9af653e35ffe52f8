"""A store update validates what it changes, and never lets an invalid document in."""

from __future__ import annotations

from typing import Any

import pytest

import rampup
from rampup.store import Store

from .helpers import doc


def with_segment() -> dict[str, Any]:
    data = doc()
    data["segments"] = {"staff": {"keys": ["ann"]}}
    data["flags"]["dark-mode"]["rules"] = [{"segments": ["staff"], "serve": "on"}]
    return data


def test_an_update_that_breaks_the_flag_it_edits_is_refused(redis_url: str) -> None:
    """Editing one flag into an invalid one raises ConfigError and writes nothing."""
    store = Store(redis_url, "shop")
    try:
        store.push(with_segment())

        def bad(data: dict[str, Any]) -> dict[str, Any]:
            data["flags"]["new-checkout"]["default"] = "maybe"
            return data

        with pytest.raises(rampup.ConfigError, match="new-checkout"):
            store.update(bad, reason="test")
        assert store.head() == (1, store.get().sha)  # type: ignore[union-attr]
    finally:
        store.close()


def test_an_update_that_removes_a_used_segment_is_refused(redis_url: str) -> None:
    """Removing a segment that an unchanged flag uses is checked against every flag."""
    store = Store(redis_url, "shop")
    try:
        store.push(with_segment())

        def drop(data: dict[str, Any]) -> dict[str, Any]:
            del data["segments"]["staff"]
            return data

        with pytest.raises(rampup.ConfigError, match="staff"):
            store.update(drop, reason="test")
        killed = store.kill("dark-mode", reason="test")  # a valid edit still goes through
        assert killed.version == 2
        assert "dark-mode" in killed.killed()
    finally:
        store.close()


def test_a_redis_source_reload_recompiles_only_the_killed_flag(redis_url: str) -> None:
    """After a one-flag kill in the store, the RedisSource's new snapshot serves the kill and
    keeps the compiled form of every other flag."""
    from rampup.redis_source import RedisSource

    store = Store(redis_url, "shop")
    source = RedisSource(redis_url, "shop", watch=False)
    try:
        store.push(doc())
        assert source.check() is True
        old = source.snapshot
        store.kill("new-checkout", reason="test")
        assert source.check() is True
        new = source.snapshot
        assert new.flags["new-checkout"].killed
        assert not new.reused("new-checkout", old)
        assert new.reused("dark-mode", old)
    finally:
        source.close()
        store.close()


def test_an_update_that_adds_an_invalid_flag_is_refused(redis_url: str) -> None:
    """A flag added by an update is validated (the document is checked whole)."""
    store = Store(redis_url, "shop")
    try:
        store.push(doc())

        def add(data: dict[str, Any]) -> dict[str, Any]:
            data["flags"]["fresh"] = {"default": "maybe"}
            return data

        with pytest.raises(rampup.ConfigError, match="fresh"):
            store.update(add, reason="test")
    finally:
        store.close()


def test_a_rollback_validates_what_differs_from_the_live_version(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rolling back a one-flag kill validates that flag; a rollback that changes a segment
    validates the document whole. Either way it writes the old content as a new version."""
    import rampup.store

    seen: list[set[str]] = []

    def recording_load(data: Any) -> rampup.Snapshot:
        seen.append(set(data["flags"]))
        return rampup.load(data)

    store = Store(redis_url, "shop")
    try:
        first = store.push(with_segment())
        store.kill("dark-mode", reason="test")
        monkeypatch.setattr(rampup.store, "load", recording_load)
        back = store.rollback(reason="test")
        assert seen == [{"dark-mode"}]
        assert (back.version, back.sha) == (3, first.sha)
        store.push(doc(), reason="no segment")
        seen.clear()
        again = store.rollback(reason="test")
        assert seen == [{"dark-mode", "new-checkout"}]
        assert again.sha == first.sha
    finally:
        store.close()
