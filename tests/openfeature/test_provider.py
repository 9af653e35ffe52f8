"""RampupProvider beyond the specification's suite: rampup's reasons, errors, metadata, events."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus

import rampup
from rampup.context import Flags, bound
from rampup.openfeature import OVERRIDE, PREREQUISITE_FAILED, RampupProvider, subject_of
from rampup.sources import FileSource

FLAGS = {
    "flags": {
        "split": {"rules": [{"split": {"on": 10, "off": 90}}]},
        "by-team": {"rules": [{"split": {"on": 50, "off": 50}, "bucket_by": "team"}]},
        "beta": {
            "rules": [
                {"segments": ["staff"], "serve": "on"},
                {"split": {"on": 50, "off": 50}},
            ],
            "metadata": {"owner": "payments"},
        },
        "killed": {"default": "on", "killed": True},
        "plain": {"default": "on"},
    },
    "segments": {
        "staff": {"conditions": [{"attribute": "email", "op": "ends_with", "value": "@corp"}]}
    },
}


@pytest.fixture
def client() -> Any:
    api.set_provider_and_wait(RampupProvider(FLAGS))
    return api.get_client()


def test_split_is_rampups_bucketing(client: Any) -> None:
    """A split answers SPLIT with the variant rampup's own engine gives that key."""
    snapshot = rampup.load(FLAGS)
    for key in ("u1", "u2", "u3", "u4"):
        d = client.get_boolean_details("split", False, EvaluationContext(key))
        assert d.reason == "SPLIT"
        assert d.variant == snapshot.evaluate("split", rampup.Subject(key)).variant
        assert d.flag_metadata == {"rule": 0}


def test_rule_match_and_metadata(client: Any) -> None:
    """A segment rule answers TARGETING_MATCH, with the flag's metadata and the rule index."""
    d = client.get_boolean_details("beta", False, EvaluationContext("u", {"email": "a@corp"}))
    assert (d.value, d.reason, d.variant) == (True, "TARGETING_MATCH", "on")
    assert d.flag_metadata == {"owner": "payments", "rule": 0}


def test_split_without_key_is_targeting_key_missing(client: Any) -> None:
    """A split by subject key reached without a targeting key is TARGETING_KEY_MISSING, and
    the caller's default is returned."""
    d = client.get_boolean_details("split", True)
    assert (d.value, d.reason, d.error_code) == (True, "ERROR", "TARGETING_KEY_MISSING")


def test_split_by_missing_attribute_is_default(client: Any) -> None:
    """A split by an attribute the context lacks serves the default (not an error)."""
    d = client.get_boolean_details("by-team", True, EvaluationContext("u"))
    assert (d.value, d.reason) == (False, "DEFAULT")


def test_killed_is_disabled_with_the_callers_default(client: Any) -> None:
    """A killed flag answers DISABLED with the caller's default, as OpenFeature defines it."""
    d = client.get_boolean_details("killed", True)
    assert (d.value, d.reason, d.error_code) == (True, "DISABLED", None)


@pytest.mark.parametrize(
    "context",
    [
        EvaluationContext("x" * 300),
        EvaluationContext("bad\nkey"),
        EvaluationContext(42),  # type: ignore[arg-type]
        EvaluationContext("u", ["not", "a", "mapping"]),  # type: ignore[arg-type]
    ],
)
def test_bad_context_is_invalid_context(client: Any, context: EvaluationContext) -> None:
    """A targeting key rampup cannot use, or attributes that are not a mapping, give
    INVALID_CONTEXT and the caller's default."""
    provider = RampupProvider(FLAGS)
    d = provider.resolve_boolean_details("plain", False, context)
    assert (d.value, d.error_code) == (False, "INVALID_CONTEXT")


def test_unknown_flag_is_reported_before_a_bad_context() -> None:
    """An unknown flag is FLAG_NOT_FOUND, with a valid context or one rampup cannot use."""
    provider = RampupProvider(FLAGS)
    for context in (None, EvaluationContext("u"), EvaluationContext("bad\nkey")):
        d = provider.resolve_boolean_details("nope", True, context)
        assert (d.value, d.error_code) == (True, "FLAG_NOT_FOUND")


def test_subject_of_maps_targeting_key_and_attributes() -> None:
    """targeting_key becomes the subject key, the other attributes its attributes."""
    s = subject_of(EvaluationContext("u1", {"plan": "pro"}))
    assert (s.key, dict(s.attributes)) == ("u1", {"plan": "pro"})
    assert subject_of(None).key is None


def test_override_of_the_current_request_is_reason_override() -> None:
    """Called inside a rampup request that forces a variant, the provider answers it with the
    custom reason OVERRIDE."""
    provider = RampupProvider(FLAGS)
    snapshot = provider.source.snapshot
    with bound(Flags(snapshot, overrides={"plain": "off"})):  # as a QA override header does
        d = provider.resolve_boolean_details("plain", True)
    assert (d.value, d.variant, d.reason) == (False, "off", OVERRIDE)


def test_a_prerequisite_not_met_is_a_normal_evaluation() -> None:
    """A flag whose prerequisite is not met serves its ``off`` variant with the custom reason
    PREREQUISITE_FAILED (not an error with the caller's default); met, its rules decide."""
    provider = RampupProvider(
        {
            "flags": {
                "gate": {"rules": [{"conditions": [{"attribute": "key", "op": "in",
                                                    "value": ["in"]}], "serve": "on"}]},
                "child": {"default": "on", "requires": [{"flag": "gate"}]},
            }
        }
    )  # fmt: skip
    d = provider.resolve_boolean_details("child", True, EvaluationContext("out"))
    assert (d.value, d.variant, d.reason, d.error_code) == (False, "off", PREREQUISITE_FAILED, None)
    d = provider.resolve_boolean_details("child", False, EvaluationContext("in"))
    assert (d.value, d.variant, d.error_code) == (True, "on", None)


def test_float_from_integer_and_object_checks() -> None:
    """An integer flag read as a float is served as a float; booleans are not integers."""
    provider = RampupProvider({"flags": {"n": {"variants": {"a": 1, "b": 2}, "default": "a"}}})
    assert provider.resolve_float_details("n", 0.0).value == 1.0
    assert type(provider.resolve_float_details("n", 0.0).value) is float
    assert provider.resolve_integer_details("plain", 0).error_code is not None
    bool_provider = RampupProvider(FLAGS)
    assert bool_provider.resolve_integer_details("plain", 0).error_code == "TYPE_MISMATCH"
    assert bool_provider.resolve_object_details("plain", {}).error_code == "TYPE_MISMATCH"


def test_internal_failure_is_general_error_never_raised() -> None:
    """A source that fails while resolving gives GENERAL and the default, never an exception."""

    class Exploding:
        snapshot = rampup.load(FLAGS)

    provider = RampupProvider(Exploding())
    Exploding.snapshot = None  # type: ignore[assignment]
    d = provider.resolve_boolean_details("plain", False)
    assert (d.value, d.error_code) == (False, "GENERAL")


def test_version_is_in_metadata_when_the_source_has_one() -> None:
    """A source exposing ``version`` has it in each decided evaluation's flag metadata."""

    class Versioned:
        snapshot = rampup.load(FLAGS)
        version = "v7"

    provider = RampupProvider(Versioned())
    assert provider.resolve_boolean_details(
        "split", False, EvaluationContext("u")
    ).flag_metadata == {
        "rule": 0,
        "version": "v7",
    }


def _events(kind: ProviderEvent) -> tuple[list[EventDetails], threading.Event]:
    got: list[EventDetails] = []
    seen = threading.Event()

    def handler(details: EventDetails) -> None:
        got.append(details)
        seen.set()

    api.add_handler(kind, handler)
    return got, seen


def test_snapshot_swap_emits_configuration_changed_with_changed_keys(tmp_path: Path) -> None:
    """Editing the flag file makes the provider emit CONFIGURATION_CHANGED naming exactly the
    flags that changed."""
    path = tmp_path / "flags.toml"
    path.write_text('[flags.a]\ndefault = "on"\n[flags.b]\ndefault = "off"\n')
    provider = RampupProvider(path, interval=3600)  # the test polls itself
    api.set_provider_and_wait(provider)
    got, seen = _events(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED)
    path.write_text('[flags.a]\ndefault = "off"\n[flags.b]\ndefault = "off"\n[flags.c]\n')
    assert isinstance(provider.source, FileSource)
    assert provider.source.reload()
    provider.poll()
    assert seen.wait(5)
    assert got[0].flags_changed == ["a", "c"]
    assert api.get_client().get_boolean_value("a", True) is False


def test_status_changes_emit_stale_then_ready() -> None:
    """A source whose status goes stale and back makes the provider STALE then READY."""

    class Store:
        def __init__(self) -> None:
            self.snapshot = rampup.load(FLAGS)
            self.status = "ready"

    store = Store()
    provider = RampupProvider(store, interval=3600)
    api.set_provider_and_wait(provider)
    client = api.get_client()
    store.status = "stale"
    provider.poll()
    assert client.get_provider_status() == ProviderStatus.STALE
    assert client.get_boolean_value("plain", False) is True  # still serving the last good flags
    store.status = "ready"
    provider.poll()
    assert client.get_provider_status() == ProviderStatus.READY
    store.status = "error"
    provider.poll()
    assert client.get_provider_status() == ProviderStatus.ERROR


def test_initialize_and_shutdown_start_and_stop_the_source() -> None:
    """initialize starts the source and shutdown stops it."""
    calls: list[str] = []

    class Managed:
        snapshot = rampup.load(FLAGS)

        def start(self) -> None:
            calls.append("start")

        def close(self) -> None:
            calls.append("close")

    api.set_provider_and_wait(RampupProvider(Managed()))
    assert calls == ["start"]
    api.shutdown()
    assert calls == ["start", "close"]


def test_file_source_gets_exactly_one_watcher(tmp_path: Path) -> None:
    """A watching FileSource handed to the provider is restarted, not doubled, and the edit is
    picked up by its watcher."""
    path = tmp_path / "one-watcher.toml"
    path.write_text('[flags.a]\ndefault = "on"\n')
    source = FileSource(path, interval=0.01)
    api.set_provider_and_wait(RampupProvider(source))

    def watchers() -> int:
        return sum(t.name == "rampup-watch:one-watcher.toml" for t in threading.enumerate())

    deadline = time.monotonic() + 10
    while watchers() > 1 and time.monotonic() < deadline:  # the first one ends at its next tick
        time.sleep(0.01)
    assert watchers() == 1
    path.write_text('[flags.a]\ndefault = "off"\n')
    deadline = time.monotonic() + 10
    while source.reloads == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.get_client().get_boolean_value("a", True) is False


def test_threads_restart_in_a_forked_child(tmp_path: Path) -> None:
    """After fork() (gunicorn --preload), the child has the provider's file watcher and event
    thread again, and sees a later edit of the flag file."""
    if not hasattr(os, "fork"):
        pytest.skip("needs fork()")
    path = tmp_path / "forked.toml"
    path.write_text('[flags.a]\ndefault = "on"\n')
    api.set_provider_and_wait(RampupProvider(path, interval=0.01))
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            names = {t.name for t in threading.enumerate()}
            path.write_text('[flags.a]\ndefault = "off"\n')
            deadline = time.monotonic() + 10
            value = True
            while value and time.monotonic() < deadline:
                time.sleep(0.02)
                value = api.get_client().get_boolean_value("a", True)
            ok = {"rampup-watch:forked.toml", "rampup-openfeature-events"} <= names
            os.write(write, b"ok" if ok and value is False else repr((names, value)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as fh:
        assert fh.read() == b"ok"
