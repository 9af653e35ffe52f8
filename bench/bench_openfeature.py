#!/usr/bin/env python
"""OpenFeature both ways: µs per evaluation and per request, beside floors timed in the same run.

Per evaluation (cases of bench_eval.py: (b) 10 % split by subject key, (c) segment rule
(email ends_with @example.com) else a 10 % split), one distinct user per call:
  engine      snapshot.evaluate(key, Subject)                      rampup alone (baseline)
  engine full the same, building the Subject from the context's key and attributes: the
              least any provider over the engine can cost (bench_eval.py's "full")
  provider    RampupProvider.resolve_boolean_details(key, False, ctx)   called directly
  sdk         client.get_boolean_details(key, False, ctx)            through the SDK
  sdk floor   the same call with a dict provider (returns a prebuilt FlagResolutionDetails):
              what the SDK itself costs, whatever the provider
Goal (issue 18): provider called directly at most 1.0 µs per evaluation for (b) and (c).

Per request (WSGI, the view reads 5 flags through rampup.flags, subject from X-User-Id):
  bare        the app without middleware
  rampup      RampupMiddleware(app, flags=<the snapshot>)
  openfeature RampupMiddleware(app, flags=OpenFeatureBackend(client over RampupProvider))
              (types declared, so each flag is one SDK call)

Usage: python bench/bench_openfeature.py [--rounds 5] [--target 0.2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as h
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

import rampup
from rampup import Subject
from rampup.openfeature import OpenFeatureBackend, RampupProvider
from rampup.wsgi import RampupMiddleware

TARGET_US = 1.0
FLAGS = {
    "segments": {
        "example-com": {
            "conditions": [{"attribute": "email", "op": "ends_with", "value": h.EXAMPLE_SUFFIX}]
        }
    },
    "flags": {
        "flag_b": {"rules": [{"split": {"on": 10, "off": 90}}]},
        "flag_c": {
            "rules": [
                {"segments": ["example-com"], "serve": "on"},
                {"split": {"on": 10, "off": 90}},
            ]
        },
        "bool1": {"default": "on"},
        "bool2": {"default": "off"},
        "bool3": {"default": "on"},
    },
}
FIVE = ("flag_b", "flag_c", "bool1", "bool2", "bool3")
CASES = {"b": "flag_b", "c": "flag_c"}


class DictProvider(AbstractProvider):
    """The SDK's floor: a provider answering from a dict of prebuilt resolution details."""

    def __init__(self) -> None:
        self.table = {k: FlagResolutionDetails(value=True, variant="on") for k in FLAGS["flags"]}

    def get_metadata(self) -> Metadata:
        return Metadata(name="dict")

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: Any = None
    ) -> Any:
        return self.table[flag_key]

    resolve_string_details = resolve_integer_details = resolve_float_details = (  # type: ignore[assignment]
        resolve_object_details  # type: ignore[has-type]
    ) = resolve_boolean_details


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The view: reads the 5 flags (nothing when unbound: the bare app)."""
    if rampup.flags.bound:
        for key in FIVE:
            rampup.flags.enabled(key)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def request(app: Any) -> Any:
    def one(environ: dict[str, Any]) -> None:
        body = app(dict(environ), lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return one


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--target", type=float, default=0.2, help="seconds per timeit loop")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: validates, noisy")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.target = 3, 0.05

    users = h.make_users()
    subjects = [Subject(uid, {"email": email}) for uid, email in users]
    contexts = [EvaluationContext(uid, {"email": email}) for uid, email in users]
    snapshot = rampup.load(FLAGS)
    provider = RampupProvider(snapshot)
    api.set_provider_and_wait(provider, domain="rampup")
    api.set_provider_and_wait(DictProvider(), domain="dict")
    client, floor_client = api.get_client("rampup"), api.get_client("dict")

    items: dict[str, h.Item] = {}
    resolve = provider.resolve_boolean_details
    for c, key in CASES.items():
        items[f"{c}|engine"] = h.Item(
            f"{c}|engine", lambda s, k=key: snapshot.evaluate(k, s), subjects
        )
        items[f"{c}|engine full"] = h.Item(
            f"{c}|engine full",
            lambda x, k=key: snapshot.evaluate(k, Subject(x.targeting_key, x.attributes)),
            contexts,
        )
        items[f"{c}|provider"] = h.Item(
            f"{c}|provider", lambda x, k=key: resolve(k, False, x), contexts
        )
        items[f"{c}|sdk"] = h.Item(
            f"{c}|sdk", lambda x, k=key: client.get_boolean_details(k, False, x), contexts
        )
        items[f"{c}|sdk floor"] = h.Item(
            f"{c}|sdk floor",
            lambda x, k=key: floor_client.get_boolean_details(k, False, x),
            contexts,
        )

    environs = [
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", "SERVER_PORT": "80",
         "wsgi.url_scheme": "http", "HTTP_X_USER_ID": uid}
        for uid, _ in users[:1000]
    ]  # fmt: skip
    backend = OpenFeatureBackend(client, types=dict.fromkeys(FIVE, "boolean"))
    apps = {
        "bare": wsgi_app,
        "rampup": RampupMiddleware(wsgi_app, snapshot, user_header="X-User-Id"),
        "openfeature": RampupMiddleware(wsgi_app, backend, user_header="X-User-Id"),
    }
    for name, app in apps.items():
        items[f"req|{name}"] = h.Item(f"req|{name}", request(app), environs)

    print(f"rampup {rampup.__version__} bench_openfeature: {h.machine_line()}")
    print(f"{args.rounds} rounds, ~{args.target}s per loop, GC on")
    h.log(f"timing {len(items)} items x {args.rounds} rounds...")
    h.run_rounds(list(items.values()), args.rounds, args.target)

    print("\n| case | path | µs/eval | vs engine | spread | target | verdict |")
    print("|---|---|---:|---:|---:|---|---|")
    misses = []
    for c in CASES:
        engine = items[f"{c}|engine"]
        for path in ("engine", "engine full", "provider", "sdk", "sdk floor"):
            it = items[f"{c}|{path}"]
            target, verdict = "—", ""
            if path == "provider":
                target = f"<= {TARGET_US:.1f} µs"
                verdict = "PASS" if it.median <= TARGET_US else "MISS"
                if verdict == "MISS":
                    misses.append(f"({c}) provider direct: {it.median:.3f} µs")
            print(
                f"| ({c}) | {path} | {it.median:.3f} | {h.same_round_ratio(it, engine):.1f}x "
                f"| {h.spread_pct(it.samples_us):.0f} % | {target} | {verdict} |"
            )
        provider, full = items[f"{c}|provider"], items[f"{c}|engine full"]
        print(
            f"|  | provider minus engine full | {h.same_round_diff(provider, full):.3f} | | | "
            "(what the provider adds to the engine) | |"
        )
        sdk, floor = items[f"{c}|sdk"], items[f"{c}|sdk floor"]
        print(
            f"|  | sdk minus its floor | {h.same_round_diff(sdk, floor):.3f} | | | "
            "(what the provider adds through the SDK) | |"
        )

    bare = items["req|bare"]
    print("\nper request, WSGI, 5 flags read (µs; difference with the bare app, same rounds)")
    for name in apps:
        it = items[f"req|{name}"]
        print(
            f"  {name:12s} {it.median:8.2f} µs   +{h.same_round_diff(it, bare):7.2f} µs over bare"
            f"   spread {h.spread_pct(it.samples_us):3.0f} %"
        )
    print(f"\nsummary: {len(misses)} target(s) missed" + "".join(f"\n  MISS {m}" for m in misses))
    if args.quick:
        print("(--quick: 3 short rounds; fine to validate the script, too noisy to quote)")
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
