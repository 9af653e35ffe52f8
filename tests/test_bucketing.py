"""Bucketing: the stable, documented hash behind every percentage split.

The vectors pinned here are also in README ("Bucketing"): if one of these tests fails, every
user would be re-bucketed. Ship a new algorithm version instead of changing these numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import rampup
from rampup import Reason, Subject
from rampup.bucketing import ALGORITHM, bucket, bucketer
from rampup.model import BUCKETS

# (salt, key, BLAKE2b-64 digest as hex, bucket): algorithm v1.
VECTORS = [
    ("new-checkout", "user-1", "ca3134865bc7f7c9", 8985),
    ("new-checkout", "user-2", "019c5d0d6d35ddc4", 5012),
    ("new-checkout", "42", "e1848f9350dfce9a", 1370),
    ("checkout-button", "user-1", "52915e62185c52e4", 5540),
    ("recommendations", "anon-7f3a", "fd1196c5cef3ff24", 9732),
    ("flag", "alice", "1e0c5579a93dc430", 7152),
    ("salt", "ключ", "dc85dd6fbe7f529d", 6781),
    ("", "", "3f7cf1824f7e92ad", 8957),
]

KEYS = [f"user-{i}" for i in range(100_000)]


def _independent(salt: str, key: str) -> int:
    """The documented algorithm, written again from its description."""
    digest = hashlib.blake2b((salt + ":" + key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


def _split_flag(weights: dict[str, float], bucket_by: str | None = None) -> rampup.Snapshot:
    rule: dict[str, Any] = {"split": weights}
    if bucket_by is not None:
        rule["bucket_by"] = bucket_by
    return rampup.load({"flags": {"f": {"rules": [rule]}}})


def test_algorithm_is_v1() -> None:
    """The algorithm in use is the documented version 1."""
    assert ALGORITHM == "v1"
    assert BUCKETS == 10_000


def test_pinned_vectors() -> None:
    """Known (salt, key) pairs land in known buckets, forever."""
    for salt, key, digest_hex, expected in VECTORS:
        digest = hashlib.blake2b((salt + ":" + key).encode("utf-8"), digest_size=8).digest()
        assert digest.hex() == digest_hex
        assert int.from_bytes(digest, "big") % 10_000 == expected
        assert bucket(salt, key) == expected, (salt, key)


def test_matches_independent_implementation() -> None:
    """bucket() equals a from-scratch hashlib computation of the documented algorithm."""
    for i in range(2_000):
        salt, key = f"flag-{i % 7}", f"k{i}-ü"
        assert bucket(salt, key) == _independent(salt, key)


def test_bucketer_equals_bucket() -> None:
    """The per-salt fast path gives the same bucket as the one-shot function."""
    fast = bucketer("new-checkout")
    for key in KEYS[:1_000]:
        assert fast(key) == bucket("new-checkout", key)


@settings(max_examples=200)
@given(salt=st.text(max_size=40), key=st.text(max_size=40))
def test_bucket_in_range_and_documented(salt: str, key: str) -> None:
    """Any text salt and key give a bucket in [0, 10000) equal to the documented algorithm."""
    try:
        expected = _independent(salt, key)
    except UnicodeEncodeError:  # lone surrogates: not text another language could send
        return
    b = bucket(salt, key)
    assert 0 <= b < 10_000
    assert b == expected


def test_identical_across_processes() -> None:
    """Another interpreter, with a different hash seed, computes the same buckets."""
    code = (
        "import json, sys\n"
        "from rampup.bucketing import bucket\n"
        "pairs = json.load(sys.stdin)\n"
        "print(json.dumps([bucket(s, k) for s, k in pairs]))\n"
    )
    pairs = [[s, k] for s, k, _, _ in VECTORS] + [["x", key] for key in KEYS[:500]]
    expected = [bucket(s, k) for s, k in pairs]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(pairs),
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        assert json.loads(out.stdout) == expected


def test_uniform_chi_square() -> None:
    """100,000 keys spread evenly over 100 bins (chi-square below the p=0.001 critical value)."""
    fast = bucketer("uniformity")
    counts = [0] * 100
    for key in KEYS:
        counts[fast(key) // 100] += 1
    expected = len(KEYS) / 100
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    # Critical value of chi-square with 99 degrees of freedom at p = 0.001.
    assert chi2 < 148.23, chi2
    # ... and not suspiciously perfect (p = 0.999 lower tail), which would mean a broken hash.
    assert chi2 > 62.26, chi2


def test_independent_across_flags() -> None:
    """Being in one flag's first 10 % says nothing about another flag's first 10 %."""
    a, b = bucketer("flag-a"), bucketer("flag-b")
    keys = KEYS[:50_000]
    in_a = {k for k in keys if a(k) < 1_000}
    in_b = {k for k in keys if b(k) < 1_000}
    both = len(in_a & in_b)
    # Independent: about 10 % of 10 % = 1 % of keys (500); identical salts would give 5,000.
    assert 0.07 * len(in_a) < both < 0.13 * len(in_a), (len(in_a), both)


def test_salt_changes_buckets() -> None:
    """A flag's salt (default: its key) decides its buckets; the same key differs across salts."""
    same = sum(bucket("flag-a", k) == bucket("flag-b", k) for k in KEYS[:10_000])
    assert same < 20  # chance collisions only: about 1 in 10,000


def test_split_shares_close_to_weights() -> None:
    """A 5 / 95 split serves `on` to about 5 % of 20,000 subjects."""
    snap = _split_flag({"on": 5, "off": 95})
    on = sum(snap.evaluate("f", Subject(k)).variant == "on" for k in KEYS[:20_000])
    assert 0.045 < on / 20_000 < 0.055


def test_split_is_sticky_and_matches_bucket() -> None:
    """A subject's variant follows its documented bucket: `on` exactly when bucket < 500."""
    snap = _split_flag({"on": 5, "off": 95})
    for key in KEYS[:2_000]:
        d = snap.evaluate("f", Subject(key, {"plan": "free"}))
        assert d.reason is Reason.SPLIT
        assert d.rule_index == 0
        assert (d.variant == "on") == (bucket("f", key) < 500)
        assert snap.evaluate("f", Subject(key)) == d  # attributes do not move a subject


def test_split_uses_flag_salt() -> None:
    """A flag's `salt` replaces its key in the hash, so renaming a flag can keep buckets."""
    snap = rampup.load(
        {"flags": {"renamed": {"salt": "old-name", "rules": [{"split": {"on": 50, "off": 50}}]}}}
    )
    for key in KEYS[:500]:
        expect = "on" if bucket("old-name", key) < 5_000 else "off"
        assert snap.evaluate("renamed", Subject(key)).variant == expect


def test_fine_weights_hundredths_of_a_percent() -> None:
    """A 0.01 % split serves `on` to exactly the keys in bucket 0."""
    snap = _split_flag({"on": 0.01, "off": 99.99})
    fast = bucketer("f")
    for key in KEYS[:30_000]:
        on = snap.evaluate("f", Subject(key)).variant == "on"
        assert on == (fast(key) == 0)


def test_subject_without_key_never_enters_split() -> None:
    """No key (None or empty) gets the default with reason DEFAULT and a detail saying why."""
    snap = _split_flag({"on": 100, "off": 0})
    for subject in (Subject(None), Subject(""), Subject(None, {"email": "a@b.c"})):
        d = snap.evaluate("f", subject)
        assert d.variant == "off"
        assert d.reason is Reason.DEFAULT
        assert d.rule_index == 0
        assert "lacks" in d.detail
        assert "'key'" in d.detail


def test_bucket_by_attribute() -> None:
    """`bucket_by` makes everyone in one org share a variant, whatever their own key."""
    snap = _split_flag({"on": 50, "off": 50}, bucket_by="org")
    orgs = [f"org-{i}" for i in range(200)]
    for org in orgs:
        variants = {
            snap.evaluate("f", Subject(f"{org}-u{j}", {"org": org})).variant for j in range(5)
        }
        assert len(variants) == 1
        assert variants == {"on" if bucket("f", org) < 5_000 else "off"}
    on = sum(snap.evaluate("f", Subject("u", {"org": o})).variant == "on" for o in orgs)
    assert 60 < on < 140  # both variants are used across orgs


def test_bucket_by_non_string_attribute() -> None:
    """A numeric `bucket_by` value is hashed as its decimal text."""
    snap = _split_flag({"on": 50, "off": 50}, bucket_by="team")
    for team in range(100):
        expect = "on" if bucket("f", str(team)) < 5_000 else "off"
        assert snap.evaluate("f", Subject("someone", {"team": team})).variant == expect


def test_bucket_by_missing_attribute_gets_default() -> None:
    """A subject lacking the `bucket_by` attribute is kept out of the split, with a reason."""
    snap = _split_flag({"on": 100, "off": 0}, bucket_by="org")
    d = snap.evaluate("f", Subject("user-1"))
    assert (d.variant, d.reason) == ("off", Reason.DEFAULT)
    assert "'org'" in d.detail


def _on_keys(snap: rampup.Snapshot, keys: list[str], now: float | None = None) -> set[str]:
    return {k for k in keys if snap.evaluate("f", Subject(k), now).variant == "on"}


def test_monotonic_fixed_ramp() -> None:
    """Subjects on at 5 % stay on at 10 %, 50 % and 100 %."""
    keys = KEYS[:5_000]
    previous: set[str] = set()
    for pct in (5, 10, 50, 100):
        on = _on_keys(_split_flag({"on": pct, "off": 100 - pct}), keys)
        assert previous <= on
        assert abs(len(on) / len(keys) - pct / 100) < 0.02
        previous = on


def test_monotonic_scheduled_ramp_whatever_the_weight_order() -> None:
    """A ramp stays monotonic even when steps list their weights in different orders."""
    ramp = [
        {"from": "2026-12-01T09:00:00Z", "split": {"off": 95, "on": 5}},
        {"from": "2026-12-03", "split": {"on": 10, "off": 90}},
        {"from": "2026-12-07", "split": {"off": 50, "on": 50}},
        {"from": "2026-12-10", "split": {"on": 100, "off": 0}},
    ]
    snap = rampup.load({"flags": {"f": {"rules": [{"ramp": ramp}]}}})
    keys = KEYS[:5_000]
    days = [1, 4, 8, 11]
    previous: set[str] = set()
    for day in days:
        now = datetime(2026, 12, day, 12, tzinfo=timezone.utc).timestamp()
        on = _on_keys(snap, keys, now)
        assert previous <= on
        previous = on
    assert previous == set(keys)


@settings(max_examples=60, deadline=None)
@given(
    low=st.integers(0, 10_000),
    extra=st.integers(0, 10_000),
    off_first=st.tuples(st.booleans(), st.booleans()),
)
def test_monotonic_property(low: int, extra: int, off_first: tuple[bool, bool]) -> None:
    """For any two weights a <= b, whoever is on at a % is on at b %, in any weight order."""
    high = min(10_000, low + extra)

    def weights(bp: int, reverse: bool) -> dict[str, float]:
        pairs = [("on", bp / 100), ("off", (10_000 - bp) / 100)]
        return dict(reversed(pairs) if reverse else pairs)

    keys = KEYS[:400]
    on_low = _on_keys(_split_flag(weights(low, off_first[0])), keys)
    on_high = _on_keys(_split_flag(weights(high, off_first[1])), keys)
    assert on_low <= on_high
    fast = bucketer("f")
    assert on_low == {k for k in keys if fast(k) < low}
