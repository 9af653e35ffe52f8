"""Timing helpers shared by the benches in this folder (not part of the rampup package).

The model is the one of the peer harness (``../shared/bench-peers/harness.py``), so numbers are
comparable with RESULTS.md there:

* an *item* is a callable ``f`` and a list of arguments (one per distinct user id). One timeit
  loop is ``for a in args: f(a)``, repeated ``number`` times; ``number`` is calibrated once so a
  loop takes about ``target_s`` seconds, and a loop is always a whole number of passes;
* items are timed in *rounds*: each round times every item once, in a rotated order, so machine
  noise spreads over all items; the value reported is the median over rounds, and a ratio
  between two items is the median of their same-round ratios;
* the garbage collector stays on while timing: allocations are paid for, as in a server.

It also holds the round-robin req/s loop of the middleware bench and the generator of the
synthetic flag files the eval and load benches use.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

N_USERS = 10_000
EXAMPLE_EVERY = 5  # every 5th user has an @example.com e-mail (20 %), as in the peer harness
EXAMPLE_SUFFIX = "@example.com"


def make_users(n: int = N_USERS) -> list[tuple[str, str]]:
    """[(user_id, email), ...]: the same ids as the peer harness (``user-00042-xxxxxxxx``)."""
    users = []
    for i in range(n):
        uid = f"user-{i:05d}-{(i * 2654435761) % 2**32:08x}"
        domain = "example.com" if i % EXAMPLE_EVERY == 0 else "other.org"
        users.append((uid, f"u{i}@{domain}"))
    return users


def machine_line() -> str:
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        load = "load average n/a"
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {load}"
    )


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Another git ref of this repository, for A/B runs (--ab REF)


def import_ref(ref: str) -> Any:
    """The rampup package as of git ``ref``, imported as ``rampup_ref`` (its imports are all
    relative, so it loads beside the working copy's). Used by the ``--ab REF`` option of
    bench_eval.py and bench_middleware.py."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = subprocess.run(
        ["git", "-C", here, "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="rampup-ab-")
    archive = subprocess.run(
        ["git", "-C", root, "archive", ref, "src/rampup"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    os.rename(os.path.join(tmp, "src", "rampup"), os.path.join(tmp, "rampup_ref"))
    sys.path.insert(0, tmp)
    return importlib.import_module("rampup_ref")


# ---------------------------------------------------------------------------------------------
# Per-call timing (eval bench)


@dataclass
class Item:
    name: str
    fn: Callable[[Any], Any]
    args: Sequence[Any]
    number: int = 1
    samples_us: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)


def _timer(item: Item) -> timeit.Timer:
    return timeit.Timer(
        stmt="for a in args: f(a)",
        setup="gc.enable()",
        globals={"f": item.fn, "args": item.args, "gc": gc},
    )


def run_rounds(items: list[Item], rounds: int, target_s: float) -> None:
    """Calibrate every item, then time them all ``rounds`` times in rotated order."""
    for it in items:
        t = _timer(it)
        t.timeit(number=1)  # warm-up: first-call effects, lazily built caches
        one = t.timeit(number=1)
        it.number = max(1, math.ceil(target_s / max(one, 1e-9)))
    for r in range(rounds):
        k = r % len(items)
        t0 = time.perf_counter()
        for it in items[k:] + items[:k]:
            secs = _timer(it).timeit(number=it.number)
            it.samples_us.append(secs / (it.number * len(it.args)) * 1e6)
        log(f"  round {r + 1}/{rounds} done in {time.perf_counter() - t0:.1f}s")


def same_round_ratio(num: Item, den: Item) -> float:
    """Median over rounds of num/den, both timed in the same round."""
    return statistics.median(a / b for a, b in zip(num.samples_us, den.samples_us, strict=True))


def same_round_diff(num: Item, den: Item) -> float:
    """Median over rounds of num - den (µs), both timed in the same round."""
    return statistics.median(a - b for a, b in zip(num.samples_us, den.samples_us, strict=True))


def spread_pct(samples: Sequence[float]) -> float:
    return (max(samples) - min(samples)) / statistics.median(samples) * 100.0


# ---------------------------------------------------------------------------------------------
# Requests per second, round robin (middleware bench; the approach of bench-peers/mwbench.py)


def _calibrated(t_1000: float, target_s: float) -> int:
    return max(1000, int(1000 * target_s / t_1000))


def run_sync(
    variants: dict[str, Callable[[int], float]], rounds: int, target_s: float
) -> dict[str, list[float]]:
    """``variants``: name -> run(n) -> seconds for n requests. Returns req/s samples."""
    ns = {}
    for k, run in variants.items():
        run(200)  # warm-up
        ns[k] = _calibrated(run(1000), target_s)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    keys = list(variants)
    for r in range(rounds):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            samples[k].append(ns[k] / variants[k](ns[k]))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k}={samples[k][-1]:,.0f}" for k in keys))
    return samples


def run_async(
    variants: dict[str, Callable[[int], Awaitable[float]]], rounds: int, target_s: float
) -> dict[str, list[float]]:
    """Like :func:`run_sync` for coroutine runners, all on one asyncio loop."""

    async def main() -> dict[str, list[float]]:
        ns = {}
        for k, arun in variants.items():
            await arun(200)
            ns[k] = _calibrated(await arun(1000), target_s)
        samples: dict[str, list[float]] = {k: [] for k in variants}
        keys = list(variants)
        for r in range(rounds):
            for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
                samples[k].append(ns[k] / await variants[k](ns[k]))
            log(
                f"  round {r + 1}/{rounds}: "
                + ", ".join(f"{k}={samples[k][-1]:,.0f}" for k in keys)
            )
        return samples

    return asyncio.run(main())


def summarize_rps(samples: dict[str, list[float]], baseline: str) -> dict[str, dict[str, float]]:
    """Per variant: median req/s and µs/req, median same-round ratio and added µs vs baseline."""
    base = samples[baseline]
    out = {}
    for k, s in samples.items():
        ratios = [x / b for x, b in zip(s, base, strict=True)]
        out[k] = {
            "median_rps": statistics.median(s),
            "us_per_req": statistics.median(1e6 / x for x in s),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "added_us": statistics.median(1e6 / x - 1e6 / b for x, b in zip(s, base, strict=True)),
            "rounds": len(s),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Synthetic flag files


SEGMENTS_PER_FILE = 50
_COUNTRIES = ["DE", "FR", "US", "GB", "NL", "SE", "JP", "BR", "IN", "CA"]
_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def synthetic_segments(n: int = SEGMENTS_PER_FILE) -> dict[str, Any]:
    """Segments as written in a flag file: keys lists, e-mail domains, countries, app versions."""
    segs: dict[str, Any] = {}
    for i in range(n):
        kind = i % 4
        if kind == 0:
            seg: dict[str, Any] = {"keys": [f"user-{j:05d}" for j in range(i, i + 20)]}
        elif kind == 1:
            seg = {
                "conditions": [
                    {"attribute": "email", "op": "ends_with", "value": f"@team{i}.example.com"}
                ]
            }
        elif kind == 2:
            seg = {
                "conditions": [
                    {"attribute": "country", "op": "in", "value": _COUNTRIES[i % 7 : i % 7 + 3]}
                ]
            }
        else:
            seg = {
                "conditions": [
                    {"attribute": "app_version", "op": "semver_gte", "value": f"4.{i % 10}.0"},
                    {"attribute": "plan", "op": "equals", "value": "pro"},
                ]
            }
        seg["description"] = f"synthetic segment {i}"
        segs[f"seg-{i:03d}"] = seg
    return segs


def synthetic_flag(i: int, rng: random.Random, segments: Sequence[str]) -> dict[str, Any]:
    """One flag of a realistic mix (by share of flags):

    35 % booleans with no rules, 20 % percentage splits, 15 % segment rule then a split,
    10 % time ramps, 8 % multivariate splits, 7 % attribute conditions, 5 % killed.
    """
    pick = rng.random()
    desc = f"synthetic flag {i}: " + rng.choice(["checkout", "search", "billing", "profile"])
    pct = rng.choice([1, 5, 10, 25, 50])
    split = {"on": pct, "off": 100 - pct}
    if pick < 0.35:
        return {"description": desc, "default": rng.choice(["on", "off"])}
    if pick < 0.55:
        return {"description": desc, "rules": [{"split": split}]}
    if pick < 0.70:
        return {
            "description": desc,
            "rules": [{"segments": [rng.choice(segments)], "serve": "on"}, {"split": split}],
        }
    if pick < 0.80:
        start = _T0 + timedelta(days=rng.randrange(0, 700))
        steps = [(1, 99), (10, 90), (50, 50), (100, 0)][: rng.choice([3, 4])]
        ramp = [
            {"from": start + timedelta(days=2 * k), "split": {"on": on, "off": off}}
            for k, (on, off) in enumerate(steps)
        ]
        return {"description": desc, "rules": [{"ramp": ramp}]}
    if pick < 0.88:
        return {
            "description": desc,
            "variants": {"a": "blue", "b": "green", "c": "orange"},
            "default": "a",
            "rules": [{"split": {"a": 33.34, "b": 33.33, "c": 33.33}}],
        }
    if pick < 0.95:
        cond = rng.choice(
            [
                {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
                {"attribute": "app_version", "op": "semver_lt", "value": "5.0.0"},
                {"attribute": "path", "op": "starts_with", "value": "/api/"},
                {"attribute": "email", "op": "matches", "value": r"^[a-z]+\.[a-z]+@corp\."},
                {"attribute": "age_days", "op": "gte", "value": 30},
            ]
        )
        return {"description": desc, "rules": [{"conditions": [cond], "serve": "on"}]}
    return {"description": desc, "killed": True, "rules": [{"split": split}]}


def synthetic_flags(n: int, seed: int = 42, skip: int = 0) -> dict[str, Any]:
    """``{"segments": ..., "flags": ...}`` with ``n`` synthetic flags ``feature-NNNNN``.

    ``skip`` leaves room for hand-written flags: keys start at ``feature-{skip:05d}``.
    """
    rng = random.Random(seed)
    segments = synthetic_segments()
    names = sorted(segments)
    flags = {f"feature-{i:05d}": synthetic_flag(i, rng, names) for i in range(skip, skip + n)}
    return {"version": 1, "segments": segments, "flags": flags}


# ---------------------------------------------------------------------------------------------
# A minimal TOML writer for the shapes above (the standard library reads TOML but cannot write it)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    bare = k.replace("-", "").replace("_", "").isalnum() and k.isascii()
    return k if bare else _toml_value(k)


def to_toml(data: dict[str, Any]) -> str:
    """``version`` plus ``[segments.X]`` / ``[flags.X]`` tables, rules as ``[[flags.X.rules]]``."""
    out = [f"version = {data.get('version', 1)}", ""]
    for section in ("segments", "flags"):
        for name, table in data.get(section, {}).items():
            head = f"{section}.{_toml_key(name)}"
            out.append(f"[{head}]")
            rules = []
            for k, v in table.items():
                if k == "rules":
                    rules = v
                else:
                    out.append(f"{_toml_key(k)} = {_toml_value(v)}")
            for rule in rules:
                out.append(f"[[{head}.rules]]")
                out.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in rule.items())
            out.append("")
    return "\n".join(out)
