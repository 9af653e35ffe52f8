#!/usr/bin/env python
"""Load + compile time and memory of a 10,000-flag file.

Writes a synthetic flag file to a temp dir (a realistic mix: 35 % booleans, 20 % splits,
15 % segment rule then split, 10 % time ramps, 8 % multivariate, 7 % attribute conditions,
5 % killed; 50 segments) as TOML and as JSON, then measures:

* ``rampup.load(path)``: median of --runs runs (GC on), the number the target is about;
* the parts of it: parsing alone (tomllib / json) and ``rampup.load(mapping)`` (validate +
  compile, no parsing);
* memory with tracemalloc: the peak while loading, and the size the snapshot keeps alive.

Target (issue 2 item 7): 10,000 flags load in under 1 s.

Usage: python bench/bench_load.py [--flags 10000] [--runs 5] [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h

import rampup

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

TARGET_S = 1.0


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
        del result
    return out


def memory(fn: Callable[[], Any]) -> tuple[int, int, int]:
    """(peak while running fn, bytes still held by its result, bytes held after it is dropped)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        del result
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return peak - base, current - base, after - base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    ap.add_argument("--flags", type=int, default=10_000, help="flags in the file (default 10000)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per item (default 5)")
    ap.add_argument("--quick", action="store_true", help="2 runs: validates, noisy")
    ap.add_argument("--keep", help="write the generated files here instead of a temp dir")
    args = ap.parse_args(argv)
    runs = 2 if args.quick else args.runs

    data = h.synthetic_flags(args.flags)
    with tempfile.TemporaryDirectory(prefix="rampup-bench-load-") as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        toml_path = os.path.join(folder, f"flags-{args.flags}.toml")
        json_path = os.path.join(folder, f"flags-{args.flags}.json")
        with open(toml_path, "w", encoding="utf-8") as fh:
            fh.write(h.to_toml(data))
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, default=lambda d: d.isoformat())
        with open(toml_path, "rb") as fh:
            toml_text = fh.read().decode()
        with open(json_path, encoding="utf-8") as fh:
            json_text = fh.read()
        parsed = tomllib.loads(toml_text)

        snap = rampup.load(toml_path)  # also a warm-up, and proves the file is valid
        assert len(snap) == args.flags, (len(snap), args.flags)
        assert len(rampup.load(json_path)) == args.flags
        del snap

        print(f"rampup {rampup.__version__} bench_load: {h.machine_line()}")
        print(
            f"{args.flags:,} flags, {len(data['segments'])} segments; "
            f"TOML {os.path.getsize(toml_path) / 1e6:.2f} MB, "
            f"JSON {os.path.getsize(json_path) / 1e6:.2f} MB; {runs} runs each, GC on\n"
        )
        items: dict[str, Callable[[], Any]] = {
            "rampup.load(TOML file)": lambda: rampup.load(toml_path),
            "rampup.load(JSON file)": lambda: rampup.load(json_path),
            "  parse only: tomllib.loads": lambda: tomllib.loads(toml_text),
            "  parse only: json.loads": lambda: json.loads(json_text),
            "  validate + compile: rampup.load(mapping)": lambda: rampup.load(parsed),
        }
        # interleave the items run by run, like the other benches
        samples: dict[str, list[float]] = {k: [] for k in items}
        for _ in range(runs):
            for k, fn in items.items():
                samples[k] += timed(fn, 1)
        print("| step | median s | min s | µs per flag | target | verdict |")
        print("|---|---:|---:|---:|---|---|")
        verdict_ok = True
        for k, s in samples.items():
            med = statistics.median(s)
            target = verdict = ""
            if k.startswith("rampup.load(") and "file" in k:
                target = f"< {TARGET_S:.0f} s"
                verdict = "PASS" if med < TARGET_S else "MISS"
                verdict_ok = verdict_ok and med < TARGET_S
            print(
                f"| {k} | {med:.3f} | {min(s):.3f} | {med / args.flags * 1e6:.1f} "
                f"| {target} | {verdict} |"
            )

        print("\nmemory (tracemalloc; one extra load each, not timed)")
        for label, fn in (
            ("TOML file", lambda: rampup.load(toml_path)),
            ("JSON file", lambda: rampup.load(json_path)),
        ):
            peak, kept, after = memory(fn)
            print(
                f"  rampup.load({label}): peak {peak / 1e6:6.1f} MB while loading, "
                f"snapshot retains {kept / 1e6:5.1f} MB ({kept / args.flags:,.0f} B per flag), "
                f"{after / 1e3:.0f} kB left after dropping it"
            )
        if args.keep:
            print(f"\nfiles kept in {folder}")
    if args.quick:
        print("(--quick: 2 runs; fine to validate the script, too noisy to quote)")
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
