"""Per-request Flags (lazy, memoized, never raising) and the `rampup.flags` proxy."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import rampup
from rampup import Decision, Flags, Reason, Snapshot, Subject, UnboundFlagsError, context

FLAGS = {
    "segments": {"qa": {"keys": ["qa-1"]}},
    "flags": {
        "a": {"rules": [{"segments": ["qa"], "serve": "on"}]},
        "b": {
            "variants": {"x": 1, "y": 2},
            "default": "x",
            "rules": [{"split": {"x": 50, "y": 50}}],
        },
        "c": {"default": "on"},
    },
}


class CountingAttributes(Mapping[str, Any]):
    """Subject attributes that count how often a rule looked one up."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.reads = 0

    def __getitem__(self, name: str) -> Any:
        self.reads += 1
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class BrokenAttributes(CountingAttributes):
    """Attributes whose every lookup fails (a lazy attribute store that is down)."""

    def __getitem__(self, name: str) -> Any:
        raise RuntimeError("attribute store down")


#: a flag whose rule reads the subject's ``plan`` attribute
PLAN = rampup.load(
    {
        "flags": {
            "p": {
                "rules": [
                    {
                        "conditions": [{"attribute": "plan", "op": "equals", "value": "pro"}],
                        "serve": "on",
                    }
                ]
            }
        }
    }
)


class Recorder:
    """A listener that records every decision it is told about."""

    def __init__(self) -> None:
        self.seen: list[tuple[Flags, Decision]] = []

    def on_decision(self, flags: Flags, decision: Decision) -> None:
        self.seen.append((flags, decision))


class Exploding:
    """A listener that always raises."""

    def on_decision(self, flags: Flags, decision: Decision) -> None:
        raise RuntimeError("listener bug")


@pytest.fixture
def snap() -> Snapshot:
    """The small flag set above."""
    return rampup.load(FLAGS)


def test_nothing_evaluated_until_read() -> None:
    """Creating Flags evaluates nothing and does not even resolve the subject."""
    attrs = CountingAttributes({"plan": "pro"})
    resolved: list[int] = []

    def resolve() -> Subject:
        resolved.append(1)
        return Subject("u", attrs)

    rec = Recorder()
    f = Flags(PLAN, resolve, (rec,))
    assert (attrs.reads, resolved, rec.seen) == (0, [], [])
    assert dict(f.decisions) == {}
    assert f.enabled("p")
    assert (attrs.reads, resolved) == (1, [1])
    assert [d.key for _, d in rec.seen] == ["p"]


def test_each_key_decided_once() -> None:
    """Every read of a key after the first returns the memoized decision: the rules are
    walked once and listeners told once."""
    attrs = CountingAttributes({"plan": "pro"})
    rec = Recorder()
    f = Flags(PLAN, Subject("user-7", attrs), (rec,))
    first = f.decision("p")
    for _ in range(5):
        assert f.decision("p") is first
        assert f.variant("p") == first.variant
        assert f.value("p") == first.value
        assert f.enabled("p") == first.enabled
    assert attrs.reads == 1
    assert [d for _, d in rec.seen] == [first]
    assert rec.seen[0][0] is f


def test_constant_flags_resolve_no_subject() -> None:
    """Reading flags no subject can change (no rules, killed, one variant for everyone) never
    resolves the subject: a request that reads only those mints no anonymous id."""
    snap = rampup.load(
        {
            "flags": {
                "plain": {"default": "on"},
                "killed": {"killed": True, "rules": [{"split": {"on": 50, "off": 50}}]},
                "everyone": {"rules": [{"serve": "on"}, {"split": {"on": 50, "off": 50}}]},
                "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
            }
        }
    )
    resolved: list[int] = []

    def resolve() -> Subject:
        resolved.append(1)
        return Subject("u")

    f = Flags(snap, resolve)
    assert [f.variant(k) for k in ("plain", "killed", "everyone")] == ["on", "off", "on"]
    assert resolved == []
    assert f.decision("split").reason is Reason.SPLIT
    assert resolved == [1]


def test_subject_resolved_once(snap: Snapshot) -> None:
    """A subject factory runs once per request, however many flags are read."""
    resolved: list[int] = []

    def resolve() -> Subject:
        resolved.append(1)
        return Subject("qa-1")

    f = Flags(snap, resolve)
    f.enabled("a"), f.enabled("b"), f.enabled("c")
    assert f.subject.key == "qa-1"
    assert resolved == [1]


def test_listener_called_once_per_decision(snap: Snapshot) -> None:
    """Listeners hear about each decided flag exactly once, in the order decided."""
    rec1, rec2 = Recorder(), Recorder()
    f = Flags(snap, Subject("qa-1"), (rec1, rec2))
    f.enabled("c"), f.enabled("a"), f.enabled("c"), f.variant("a")
    all_values = f.all()
    assert all_values == {"a": True, "b": f.value("b"), "c": True}
    for rec in (rec1, rec2):
        assert [d.key for _, d in rec.seen] == ["c", "a", "b"]
    assert list(f.decisions) == ["c", "a", "b"]


def test_listener_exceptions_do_not_escape(
    snap: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising listener is logged; the read still succeeds and later listeners still run."""
    rec = Recorder()
    f = Flags(snap, Subject("qa-1"), (Exploding(), rec))
    with caplog.at_level(logging.ERROR, logger="rampup"):
        assert f.enabled("a") is True
    assert [d.key for _, d in rec.seen] == ["a"]
    assert any("listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_subject_factory_failure_means_anonymous(
    snap: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    """A subject factory that raises is logged and the request is treated as anonymous."""

    def resolve() -> Subject:
        raise LookupError("no session")

    f = Flags(snap, resolve)
    with caplog.at_level(logging.ERROR, logger="rampup"):
        d = f.decision("b")
    assert f.subject.key is None
    assert (d.variant, d.reason) == ("x", Reason.DEFAULT)
    assert any("subject" in r.getMessage() for r in caplog.records)


def test_evaluation_failure_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    """If evaluation itself raises (here the subject's attributes), the read gets the default
    with reason ERROR, logged; the request goes on."""
    f = Flags(PLAN, Subject("u", BrokenAttributes({})))
    with caplog.at_level(logging.ERROR, logger="rampup"):
        d = f.decision("p")
    assert (d.variant, d.reason) == ("off", Reason.ERROR)
    assert "attribute store down" in d.detail
    assert f.enabled("p") is False
    assert any("'p'" in r.getMessage() and r.exc_info for r in caplog.records)


def test_overrides_force_variants(snap: Snapshot) -> None:
    """Flags(..., overrides=...) forces variants with reason OVERRIDE, as QA overrides do."""
    f = Flags(snap, Subject("u"), overrides={"b": "y"})
    assert f.decision("b") == Decision("b", "y", 2, Reason.OVERRIDE)
    assert f.override_for("b") == "y"
    assert f.decision("a").reason is Reason.DEFAULT
    assert Flags(snap, Subject("u")).decision("b").reason is Reason.SPLIT


def test_unknown_flag_reads(snap: Snapshot) -> None:
    """Unknown keys read as False / None / the given default, never raising."""
    f = Flags(snap, Subject("u"))
    assert f.enabled("zzz-unknown") is False
    assert f.variant("zzz-unknown") is None
    assert f.value("zzz-unknown", 42) == 42
    assert f.decision("zzz-unknown").reason is Reason.UNKNOWN_FLAG


def test_flags_without_subject(snap: Snapshot) -> None:
    """Flags(snapshot) alone has a keyless subject that never enters splits."""
    f = Flags(snap)
    assert f.subject == Subject(None)
    assert f.decision("b").reason is Reason.DEFAULT


def test_proxy_unbound_raises_helpful_error() -> None:
    """Outside a request, rampup.flags raises UnboundFlagsError saying how to fix it."""
    assert not rampup.flags.bound
    assert "unbound" in repr(rampup.flags)
    with pytest.raises(UnboundFlagsError) as info:
        rampup.flags.enabled("a")
    message = str(info.value)
    assert "outside a request" in message
    assert "rampup.flask.Rampup" in message
    assert "RampupMiddleware" in message
    assert isinstance(info.value, RuntimeError)
    for read in (
        lambda: rampup.flags.variant("a"),
        lambda: rampup.flags.value("a"),
        lambda: rampup.flags.decision("a"),
        rampup.flags.all,
        lambda: rampup.flags.subject,
        context.current,
    ):
        with pytest.raises(UnboundFlagsError):
            read()


def test_proxy_reads_bound_flags(snap: Snapshot) -> None:
    """Inside context.bound(), rampup.flags is that request's Flags; afterwards unbound again."""
    f = Flags(snap, Subject("qa-1"))
    with context.bound(f) as bound:
        assert bound is f
        assert rampup.flags.bound
        assert context.current() is f
        assert rampup.flags.enabled("a") is True
        assert rampup.flags.variant("a") == "on"
        assert rampup.flags.value("nope", "dflt") == "dflt"
        assert rampup.flags.decision("a") is f.decision("a")
        assert rampup.flags.subject.key == "qa-1"
        assert rampup.flags.all() == f.all()
        assert "Flags" in repr(rampup.flags)
    assert not rampup.flags.bound


def test_nested_bind_restores_outer(snap: Snapshot) -> None:
    """Binding inside a bound block and leaving it restores the outer Flags."""
    outer, inner = Flags(snap, Subject("o")), Flags(snap, Subject("i"))
    with context.bound(outer):
        token = context.bind(inner)
        assert context.current() is inner
        context.unbind(token)
        assert context.current() is outer
    assert not rampup.flags.bound


def test_unbind_with_foreign_token_is_reported(snap: Snapshot) -> None:
    """Resetting with a token from another context raises a RuntimeError naming the bug."""
    f = Flags(snap, Subject("u"))
    token = contextvars.copy_context().run(context.bind, f)
    with pytest.raises(RuntimeError, match="out of order"):
        context.unbind(token)


def test_isolation_across_threads(snap: Snapshot) -> None:
    """Eight threads bound at the same time each see only their own Flags."""
    barrier = threading.Barrier(8)
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            f = Flags(snap, Subject("qa-1" if i % 2 else f"user-{i}"))
            with context.bound(f):
                barrier.wait(timeout=10)
                for _ in range(200):
                    if context.current() is not f:
                        errors.append(f"thread {i} saw another Flags")
                    if rampup.flags.enabled("a") != bool(i % 2):
                        errors.append(f"thread {i} got a wrong decision")
                barrier.wait(timeout=10)
            if rampup.flags.bound:
                errors.append(f"thread {i} still bound")
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert not rampup.flags.bound


def test_isolation_across_asyncio_tasks(snap: Snapshot) -> None:
    """500 concurrent tasks, interleaving at every await, each see only their own Flags."""

    async def task(i: int) -> tuple[int, bool, bool]:
        f = Flags(snap, Subject("qa-1" if i % 3 == 0 else f"user-{i}"))
        with context.bound(f):
            same = True
            for _ in range(5):
                await asyncio.sleep(0)
                same = same and context.current() is f and rampup.flags.subject is f.subject
            return i, same, rampup.flags.enabled("a")

    async def main() -> list[tuple[int, bool, bool]]:
        return await asyncio.gather(*(task(i) for i in range(500)))

    results = asyncio.run(main())
    assert len(results) == 500
    for i, same, enabled in results:
        assert same, i
        assert enabled == (i % 3 == 0), i
    assert not rampup.flags.bound
