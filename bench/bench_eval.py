#!/usr/bin/env python
"""Microseconds per flag evaluation, against the bare floors timed in the same rounds.

Cases (the peer harness's A/B/C, see ../shared/bench-peers/README.md):
  (a) boolean flag, on for all
  (b) 10 % split by subject key
  (c) segment rule (email ends_with @example.com) -> on, else a 10 % split   (expect ~28 % on)
  (d) two prerequisites, (a) and (b), then on for all                         (expect ~10 % on)
      (issue 19: its cost is that of deciding its prerequisites; (a)-(c) declare none, and
      ``--ab main`` shows their cost unchanged by prerequisites existing)
each in a snapshot of 10 and of 10,000 flags, through three call paths:
  prebuilt  Subject built ahead (one per user):             snapshot.evaluate(key, subject)
  full      Subject(uid, {"email": email}) + evaluate:      what a middleware pays for one flag
  flags     Flags(snapshot, Subject(...)).enabled(key):     the per-request object, first read
Floors: no-op call, dict lookup, blake2b bucket (rampup's hash), sha1 bucket (LaunchDarkly's).

Each timeit loop passes over 10,000 distinct user ids (every 5th with an @example.com e-mail),
GC enabled; the value is the median of --rounds interleaved rounds.

With ``--ab REF`` (a git ref of this repository, e.g. ``main``), the same cases are also timed
through that commit's engine, imported from a ``git archive`` of its ``src/rampup`` under the
name ``rampup_ref``, in the same rounds: an A/B of two versions of the code on one machine.

Usage: python bench/bench_eval.py [--rounds 5] [--target 0.2] [--quick] [--ab REF] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

import rampup
from rampup import Subject

CASES = {
    "a": ("flag_a", "(a) on for all"),
    "b": ("flag_b", "(b) 10 % split"),
    "c": ("flag_c", "(c) segment else 10 %"),
    "d": ("flag_d", "(d) 2 prerequisites"),
}
#: cases a reference commit (--ab) may lack: it may predate prerequisites
NEW_CASES = frozenset({"d"})
CASE_SEGMENTS = {
    "example-com": {
        "conditions": [{"attribute": "email", "op": "ends_with", "value": h.EXAMPLE_SUFFIX}]
    }
}
CASE_FLAGS = {
    "flag_a": {"default": "on"},
    "flag_b": {"rules": [{"split": {"on": 10, "off": 90}}]},
    "flag_c": {
        "rules": [{"segments": ["example-com"], "serve": "on"}, {"split": {"on": 10, "off": 90}}]
    },
    "flag_d": {
        "requires": [{"flag": "flag_a", "variant": "on"}, {"flag": "flag_b", "variant": "on"}],
        "rules": [{"serve": "on"}],
    },
}
SIZES = (10, 10_000)
PATHS = ("prebuilt", "full", "flags")
TARGET_US = 1.0  # issue 2 item 7: (b) and (c) at most 1.0 µs
SIZE_TOLERANCE = 0.10  # 10 and 10,000 flags within 10 % of each other
EXPECTED_ON = {"a": 1.0, "b": 0.10, "c": 0.28, "d": 0.10}


def snapshot_with(n_flags: int, package: Any = rampup) -> Any:
    """The three case flags plus synthetic ones, ``n_flags`` in all, loaded by ``package``."""
    data = h.synthetic_flags(n_flags - len(CASE_FLAGS))
    data["segments"].update(CASE_SEGMENTS)
    data["flags"].update(CASE_FLAGS)
    if package is not rampup:
        data["flags"].pop("flag_d")
        data["flags"][f"synthetic-d-{n_flags}"] = {"default": "off"}  # keep n_flags
    snap = package.load(data)
    assert len(snap) == n_flags, len(snap)
    return snap


def floors(users: list[tuple[str, str]]) -> dict[str, Any]:
    """Reference floors with the same ``f(user)`` calling convention as the rampup paths."""
    blake2b, sha1 = hashlib.blake2b, hashlib.sha1
    from_bytes = int.from_bytes
    table = {u[0]: True for u in users}
    prefix = blake2b(b"flag_b:", digest_size=8)

    def noop(u: tuple[str, str]) -> None:
        return None

    def dict_lookup(u: tuple[str, str]) -> bool:
        return table[u[0]]

    def blake2b_bucket(u: tuple[str, str]) -> bool:  # rampup v1, hashed from scratch
        digest = blake2b(("flag_b:" + u[0]).encode(), digest_size=8).digest()
        return from_bytes(digest, "big") % 10000 < 1000

    def blake2b_prefix_bucket(u: tuple[str, str]) -> bool:  # rampup v1 as bucketing.py does it
        d = prefix.copy()
        d.update(u[0].encode())
        return from_bytes(d.digest(), "big") % 10000 < 1000

    def sha1_bucket(u: tuple[str, str]) -> bool:  # LaunchDarkly-style: 15 hex digits of sha1
        return int(sha1(("flag_b." + u[0]).encode()).hexdigest()[:15], 16) % 100000 < 10000

    def case_c_floor(u: tuple[str, str]) -> bool:
        if u[1].endswith(h.EXAMPLE_SUFFIX):
            return True
        d = prefix.copy()
        d.update(u[0].encode())
        return from_bytes(d.digest(), "big") % 10000 < 1000

    return {
        "noop call": noop,
        "dict lookup": dict_lookup,
        "blake2b bucket": blake2b_bucket,
        "blake2b prefix-copy bucket": blake2b_prefix_bucket,
        "sha1 bucket": sha1_bucket,
        "blake2b + endswith (case c)": case_c_floor,
    }


# which floor each case is compared with
CASE_FLOOR = {
    "a": "dict lookup",
    "b": "blake2b bucket",
    "c": "blake2b + endswith (case c)",
    "d": "blake2b bucket",
}


def paths(snap: Any, key: str, package: Any = rampup) -> dict[str, Any]:
    """The three call paths for one flag, each ``f(arg)`` like the floors."""
    evaluate = snap.evaluate
    subject_cls, flags_cls = package.Subject, package.Flags  # this package's own classes

    def prebuilt(s: Subject) -> rampup.Decision:
        return evaluate(key, s)

    def full(u: tuple[str, str]) -> rampup.Decision:
        return evaluate(key, subject_cls(u[0], {"email": u[1]}))

    def flags(u: tuple[str, str]) -> bool:
        return flags_cls(snap, subject_cls(u[0], {"email": u[1]})).enabled(key)

    return {"prebuilt": prebuilt, "full": full, "flags": flags}


def check_semantics(
    snaps: dict[int, rampup.Snapshot], users: list[tuple[str, str]], subjects: list[Subject]
) -> tuple[list[str], bool]:
    """On-fractions per case, and agreement between paths and snapshot sizes."""
    lines, ok = [], True
    ex = [u[1].endswith(h.EXAMPLE_SUFFIX) for u in users]
    n_ex = sum(ex)
    ref: dict[str, list[bool]] = {}
    for n, snap in snaps.items():
        for c, (key, label) in CASES.items():
            p = paths(snap, key)
            full = [bool(p["full"](u).value) for u in users]
            pre = [bool(p["prebuilt"](s).value) for s in subjects]
            via_flags = [p["flags"](u) for u in users]
            frac = sum(full) / len(full)
            on_ex = sum(f for f, e in zip(full, ex, strict=True) if e) / n_ex
            on_other = sum(f for f, e in zip(full, ex, strict=True) if not e) / (len(users) - n_ex)
            agree = pre == full == via_flags
            same_as_10 = ref.setdefault(c, full) == full
            want = EXPECTED_ON[c]
            good = abs(frac - want) <= (0.0 if want == 1.0 else 0.015) and agree and same_as_10
            if c == "c":
                good = good and on_ex == 1.0
            ok = ok and good
            lines.append(
                f"  {label:22s} {n:>6,} flags: on {frac:7.2%} (expect ~{want:.0%}), "
                f"@example.com {on_ex:7.2%}, others {on_other:7.2%}, "
                f"prebuilt==full==flags {agree}, same as 10-flag snapshot {same_as_10}"
                f"  {'ok' if good else 'UNEXPECTED'}"
            )
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--target", type=float, default=0.2, help="seconds per timeit loop")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: validates, noisy")
    ap.add_argument("--ab", metavar="REF", help="also time this git ref's engine (e.g. main)")
    ap.add_argument("--out", help="also write the raw samples as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.target = 3, 0.05

    users = h.make_users()
    subjects = [Subject(uid, {"email": email}) for uid, email in users]
    snaps = {n: snapshot_with(n) for n in SIZES}

    print(f"rampup {rampup.__version__} bench_eval: {h.machine_line()}")
    print(f"{args.rounds} rounds, ~{args.target}s per loop, {len(users):,} users per pass, GC on")
    sem_lines, sem_ok = check_semantics(snaps, users, subjects)

    items = {name: h.Item(name, fn, users) for name, fn in floors(users).items()}
    for n, snap in snaps.items():
        for c, (key, _) in CASES.items():
            for path, fn in paths(snap, key).items():
                name = f"{c}|{n}|{path}"
                items[name] = h.Item(name, fn, subjects if path == "prebuilt" else users)
    ref_pkg = h.import_ref(args.ab) if args.ab else None
    if ref_pkg is not None:
        ref_subjects = [ref_pkg.Subject(uid, {"email": email}) for uid, email in users]
        for n in SIZES:
            ref_snap = snapshot_with(n, ref_pkg)
            for c, (key, _) in CASES.items():
                if c in NEW_CASES:
                    continue
                for path, fn in paths(ref_snap, key, ref_pkg).items():
                    name = f"{c}|{n}|{path}|ref"
                    items[name] = h.Item(name, fn, ref_subjects if path == "prebuilt" else users)
    h.log(f"timing {len(items)} items x {args.rounds} rounds...")
    h.run_rounds(list(items.values()), args.rounds, args.target)

    noop = items["noop call"]
    print("\nfloors (same rounds; µs per call incl. the Python call, net = minus the no-op call)")
    for name in floors(users):
        it = items[name]
        print(
            f"  {name:30s} {it.median:7.3f} µs   net {h.same_round_diff(it, noop):6.3f}"
            f"   spread {h.spread_pct(it.samples_us):4.0f} %"
        )

    print("\n| case | flags | path | µs/eval | x floor | spread | target | verdict |")
    print("|---|---:|---|---:|---|---:|---|---|")
    misses = []
    for c, (_, label) in CASES.items():
        floor = items[CASE_FLOOR[c]]
        for n in SIZES:
            for path in PATHS:
                it = items[f"{c}|{n}|{path}"]
                ratio = h.same_round_ratio(it, floor)
                target, verdict = "—", ""
                if c in "bc" and path in ("prebuilt", "full"):
                    target = f"<= {TARGET_US:.1f} µs"
                    verdict = "PASS" if it.median <= TARGET_US else "MISS"
                    if verdict == "MISS":
                        misses.append(f"{label} {n} flags {path}: {it.median:.3f} µs")
                print(
                    f"| {label} | {n:,} | {path} | {it.median:.3f} | {ratio:.1f}x "
                    f"{CASE_FLOOR[c]} | {h.spread_pct(it.samples_us):.0f} % | {target} "
                    f"| {verdict} |"
                )

    print(f"\n10,000 vs 10 flags (median of same-round ratios; target within {SIZE_TOLERANCE:.0%})")
    for c, (_, label) in CASES.items():
        for path in PATHS:
            r = h.same_round_ratio(items[f"{c}|10000|{path}"], items[f"{c}|10|{path}"])
            verdict = "PASS" if abs(r - 1) <= SIZE_TOLERANCE else "MISS"
            if verdict == "MISS":
                misses.append(f"{label} {path}: 10,000/10 flags = {r:.3f}")
            print(f"  {label:22s} {path:9s} {r:6.3f}  {verdict}")

    print("\nprerequisites: (d) / (a) + (b), same rounds (1.0: a prerequisite costs what deciding")
    print("it costs; flags without prerequisites pay one attribute test, see --ab main)")
    for n in SIZES:
        for path in ("prebuilt", "full"):
            d_, a_, b_ = (items[f"{c}|{n}|{path}"] for c in "dab")
            print(
                f"  {n:>6,} flags {path:9s} (d) {d_.median:6.3f} µs, (a)+(b) "
                f"{a_.median + b_.median:6.3f} µs, ratio {d_.median / (a_.median + b_.median):5.2f}"
            )

    if ref_pkg is not None:
        print(f"\nA/B: this working copy vs {args.ab} (same rounds; ratio < 1: this copy faster)")
        print(f"| case | flags | path | this µs | {args.ab} µs | this / {args.ab} |")
        print("|---|---:|---|---:|---:|---:|")
        for c, (_, label) in CASES.items():
            if c in NEW_CASES:
                continue
            for n in SIZES:
                for path in PATHS:
                    new, old = items[f"{c}|{n}|{path}"], items[f"{c}|{n}|{path}|ref"]
                    print(
                        f"| {label} | {n:,} | {path} | {new.median:.3f} | {old.median:.3f} "
                        f"| {h.same_round_ratio(new, old):.3f} |"
                    )

    print("\nsemantics (10,000 users):")
    print("\n".join(sem_lines))
    print(f"\nsummary: {len(misses)} target(s) missed" + "".join(f"\n  MISS {m}" for m in misses))
    if args.quick:
        print("(--quick: 3 short rounds; fine to validate the script, too noisy to quote)")

    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {
                    "machine": h.machine_line(),
                    "rounds": args.rounds,
                    "target_s": args.target,
                    "items": {
                        k: {
                            "median_us": it.median,
                            "samples_us": it.samples_us,
                            "number": it.number,
                        }
                        for k, it in items.items()
                    },
                    "semantics_ok": sem_ok,
                },
                fh,
                indent=1,
            )
        print(f"wrote {args.out}")
    return 0 if sem_ok else 1


if __name__ == "__main__":
    sys.exit(main())
