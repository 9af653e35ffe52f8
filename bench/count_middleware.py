#!/usr/bin/env python
"""Instructions per request of bench_middleware.py's plain WSGI and ASGI variants, counted by
``valgrind --tool=callgrind``: figures that do not move with the machine's load.

Timings on a shared 2-core machine move by 2-4x with what else runs; instruction counts do not
move with the load. Children run with ``PYTHONHASHSEED=0``; what is left (the garbage
collector's timing, memory layout) moved a variant by up to about 1,500 instructions per
request between runs here, so compare differences larger than that. Counts are no substitute
for time: a syscall or a cache miss costs more than its instructions say. Use them to compare
code (this copy against ``--ab REF``, in the same run), and bench_middleware.py on a quiet
machine for microseconds.

Each figure is one variant's app run ``--requests`` times in a child process under callgrind,
minus the same child running a third as many: the difference divided by the requests between
them is the cost of one request, without start-up and imports. Variants as in
bench_middleware.py: a bare app, b rampup reading 0 flags, c 5 flags (cookie id), d 5 flags
(X-User-Id), f the floor middleware (binds a ContextVar, wraps start_response/send);
``--ab REF`` adds b, c, d built with that git ref's middleware. Then the issue 11 budgets as
instruction differences (b - f, c - b), this copy beside the ref. ``--telemetry off`` as in
bench_middleware.py.

Usage: python bench/count_middleware.py [--frameworks wsgi,asgi] [--ab 9492cd6]
           [--requests 3000] [--telemetry auto|off]
Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = "abcdf"
AB_VARIANTS = "bcd"


def child(framework: str, variant: str, n: int, ab: str | None, telemetry: str) -> None:
    """Run ``n`` requests of one variant (after a 200-request warm-up), in this process."""
    sys.path.insert(0, HERE)
    import _harness as h
    import bench_middleware as bm

    if telemetry == "off":
        bm.MW_OPTIONS = {**bm.OPTIONS, "telemetry": "off"}
    if ab is not None and variant.endswith("@ref"):
        bm.REF = h.import_ref(ab)
    reader = bm.reader_of(variant)
    if framework == "wsgi":
        apps, _ = bm.plain_wsgi_apps()
        env = bm.ref_requests(bm.wsgi_environs("wsgi"))[variant]
        run = bm.wsgi_runner(apps[variant], env, reader)
        run(200)
        run(n)
    else:
        apps, _ = bm.plain_asgi_apps()
        scope = bm.scope_for(bm.REQUEST_OF[variant.split("@", maxsplit=1)[0]])
        arun = bm.asgi_runner(apps[variant], scope, reader)

        async def both() -> None:
            await arun(200)
            await arun(n)

        asyncio.run(both())


def instructions(framework: str, variant: str, n: int, ab: str | None, telemetry: str) -> int:
    """Instructions callgrind counted for a child running ``n`` requests of ``variant``."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        f"{framework}:{variant}:{n}",
        "--telemetry",
        telemetry,
    ]
    if ab is not None:
        cmd += ["--ab", ab]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # one dict layout for every child
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"count_middleware: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return int(m.group(1))


def per_request(framework: str, variant: str, n: int, ab: str | None, telemetry: str) -> int:
    few = n // 3
    many = instructions(framework, variant, n, ab, telemetry)
    base = instructions(framework, variant, few, ab, telemetry)
    return round((many - base) / (n - few))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frameworks", default="wsgi,asgi")
    ap.add_argument("--ab", default=None, help="also count b, c, d with this git ref's code")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--telemetry", choices=("auto", "off"), default="auto")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        framework, variant, n = args.child.split(":")
        child(framework, variant, int(n), args.ab, args.telemetry)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("count_middleware: valgrind is missing (apt-get install valgrind)")
    frameworks = args.frameworks.split(",")
    jobs = [(fw, v) for fw in frameworks for v in VARIANTS]
    if args.ab is not None:
        jobs += [(fw, f"{v}@ref") for fw in frameworks for v in AB_VARIANTS]
    print(
        f"count_middleware: instructions per request (callgrind), {args.requests} requests "
        f"minus {args.requests // 3}, telemetry={args.telemetry}"
        + (f", ref {args.ab}" if args.ab else "")
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(
                jobs,
                pool.map(
                    lambda j: per_request(j[0], j[1], args.requests, args.ab, args.telemetry),
                    jobs,
                ),
                strict=True,
            )
        )
    print("\n| framework | variant | this copy | ref | this / ref |")
    print("|---|---|---:|---:|---:|")
    for fw, v in jobs:
        if v.endswith("@ref"):
            continue
        ref = counts.get((fw, f"{v}@ref"))
        ratio = f"{counts[fw, v] / ref:.2f}" if ref else ""
        print(f"| {fw} | {v} | {counts[fw, v]:,} | {f'{ref:,}' if ref else ''} | {ratio} |")
    print("\nissue 11 budgets as instruction differences (this copy; the ref beside it)")
    print("\n| framework | budget | this copy | ref |")
    print("|---|---|---:|---:|")
    for fw in frameworks:
        c = {v: counts[fw, v] for v in VARIANTS}
        r = {v: counts.get((fw, f"{v}@ref")) for v in AB_VARIANTS}
        rows = [
            ("0 flags above the floor (b - f)", c["b"] - c["f"], r["b"] and r["b"] - c["f"]),
            ("5 flags above 0 flags (c - b)", c["c"] - c["b"], r["c"] and r["c"] - (r["b"] or 0)),
            ("5 flags above 0 flags (d - b)", c["d"] - c["b"], r["d"] and r["d"] - (r["b"] or 0)),
        ]
        for label, this, ref in rows:
            print(f"| {fw} | {label} | {this:+,} | {f'{ref:+,}' if ref else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
