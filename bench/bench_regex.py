#!/usr/bin/env python
"""`matches` conditions against hostile headers: the worst patterns the loader accepts, against
a request value at the size cap (rampup.operators.MAX_MATCH_INPUT, 1,024 characters), in µs.

Each item evaluates one flag whose only rule is a ``matches`` condition on a header attribute,
through ``Snapshot.evaluate`` (what a request pays on its first read of the flag). The
baseline, measured in the same rounds, is a plain prefix pattern against a short User-Agent.
Items:

* the classic catastrophic pattern ``^(\\w+\\s?)*$`` (2.9 s per request with Python's ``re``
  on a 24-character header, before issue 12), against 1,023 word characters and a ``!``
  (the worst case for a backtracking engine) -- accepted only with google-re2;
* ``(a|aa)+$`` and ``(.*a){20}`` against their worst inputs at the cap -- likewise;
* ``.*.*.*=.*`` (polynomial for a backtracker; accepted with or without RE2) against 1,024
  characters without ``=``;
* an 8 KB header (past the cap): refused before the pattern runs.

Target (issue 12): linear time; the figure to read is µs per evaluation at the cap.

Usage: python bench/bench_regex.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

import rampup
from rampup import ConfigError, Subject
from rampup.operators import MAX_MATCH_INPUT

CAP = MAX_MATCH_INPUT
CASES = [
    ("baseline: ^Mozilla/ vs a 120-char UA", "^Mozilla/", "Mozilla/5.0 " + "x" * 108),
    ("^(\\w+\\s?)*$ vs 1,023 word chars + '!'", "^(\\w+\\s?)*$", "a" * (CAP - 1) + "!"),
    ("(a|aa)+$ vs 1,023 'a' + '!'", "(a|aa)+$", "a" * (CAP - 1) + "!"),
    ("(.*a){20} vs 1,024 'a' minus the last", "(.*a){20}", "a" * 19 + "b" * (CAP - 19)),
    (".*.*.*=.* vs 1,024 chars without '='", ".*.*.*=.*", "x" * CAP),
    ("^(\\w+\\s?)*$ vs an 8 KB header (over the cap)", "^(\\w+\\s?)*$", "a" * 8192),
]


def snapshot(pattern: str) -> rampup.Snapshot | None:
    cond = {"attribute": "ua", "op": "matches", "value": pattern}
    try:
        return rampup.load({"flags": {"f": {"rules": [{"conditions": [cond], "serve": "on"}]}}})
    except ConfigError as exc:
        h.log(f"  refused at load: {pattern}: {exc.problems[0].message}")
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 short rounds: validates, noisy")
    args = ap.parse_args(argv)
    rounds, target = (2, 0.05) if args.quick else (args.rounds, 0.3)
    try:
        import re2  # noqa: F401

        engine = "google-re2"
    except ImportError:
        engine = "Python re (google-re2 not installed: backtracking shapes are refused)"
    print(f"rampup {rampup.__version__} bench_regex: {h.machine_line()}")
    print(f"engine: {engine}; input cap {CAP} chars; {rounds} rounds, GC on\n")
    items = []
    for name, pattern, header in CASES:
        snap = snapshot(pattern)
        if snap is None:
            print(f"{name:<52} refused at load")
            continue
        subject = Subject("u", {"ua": header})
        items.append(h.Item(name, lambda s, snap=snap: snap.evaluate("f", s), [subject]))
    h.run_rounds(items, rounds, target)
    base = items[0]
    print(f"{'item':<52} {'median µs':>10} {'x baseline':>11} {'spread':>8}")
    for it in items:
        ratio = h.same_round_ratio(it, base)
        print(
            f"{it.name:<52} {it.median:>10.2f} {ratio:>10.1f}x {h.spread_pct(it.samples_us):>7.0f}%"
        )
    print("\nTarget: linear time (no backtracking); read the µs at the cap above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
