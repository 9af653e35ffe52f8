"""``rampup explain FILE FLAG --id KEY [--attr NAME=VALUE ...]``: why a subject gets a variant."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..bucketing import ALGORITHM, bucket
from ..model import Reason, Subject
from ..rollout import describe
from ..rule_text import rule_summary, rule_words
from . import CommandError
from ._common import add_env, decision_dict, emit_json, load_file, parse_at, parse_attrs


def register(sub: Any) -> None:
    """Add the ``explain`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "explain",
        help="show the decision for one subject",
        description="Show which variant a subject gets, why, and its bucket.",
    )
    p.add_argument("file")
    p.add_argument("flag")
    p.add_argument("--id", dest="key", help="the subject key (user id); omit for no key")
    p.add_argument("--attr", action="append", metavar="NAME=VALUE", help="a subject attribute")
    p.add_argument("--at", help="evaluate at this ISO 8601 time instead of now (for ramps)")
    p.add_argument("--override", help="an override header value to test, e.g. 'flag=on'")
    p.add_argument(
        "--secret-env",
        default="RAMPUP_OVERRIDE_SECRET",
        metavar="NAME",
        help="environment variable holding the secret(s) that check signed overrides, "
        "comma-separated for rotation (default RAMPUP_OVERRIDE_SECRET)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_env(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the decision for one subject: variant, reason, rule, bucket and override."""
    snapshot = load_file(args.file, args.env)
    flag = snapshot.flags.get(args.flag)
    if flag is None:
        known = ", ".join(sorted(snapshot.flags)) or "(none)"
        raise CommandError(f"no flag {args.flag!r} in {args.file}; flags: {known}")
    now = parse_at(args.at)
    subject = Subject(args.key, parse_attrs(args.attr))
    override = _override_info(args, snapshot)
    forced = override.get("variant") if override and override.get("honoured") else None
    d = snapshot.evaluate(args.flag, subject, now, forced)
    rule = flag.rules[d.rule_index] if d.rule_index is not None else None
    data: dict[str, Any] = decision_dict(d)
    data["subject"] = {"key": args.key, "attributes": dict(subject.attributes)}
    data["bucket"] = bucket(flag.salt or flag.key, args.key) if args.key else None
    data["bucketing"] = ALGORITHM
    data["rule"] = (
        {
            "index": d.rule_index,
            "description": rule.description or None,
            "segments": list(rule.segments),
            "rollout": _rollout_dict(rule.rollout) if rule.rollout is not None else None,
        }
        if rule is not None
        else None
    )
    if override is not None:
        data["override"] = override
    chain = snapshot.prerequisite_chain(args.flag, subject, now)
    data["environment"] = snapshot.environment or None
    data["prerequisites"] = [
        {"depth": depth, "flag": key, "requires": want, **decision_dict(got)}
        for depth, key, want, got in chain
    ]
    if args.json:
        emit_json(data)
        return 0
    print(f"flag      {d.key}" + (f"  ({flag.description})" if flag.description else ""))
    print(
        f"subject   {args.key if args.key else '(no key)'}"
        + (f"  {dict(subject.attributes)}" if subject.attributes else "")
    )
    print(f"variant   {d.variant}  (value {d.value!r})")
    print(f"reason    {d.reason.value}" + (f": {d.detail}" if d.detail else ""))
    if snapshot.environment:
        print(f"env       {snapshot.environment}")
    for depth, key, want, got in chain:
        mark = "met" if got.variant == want else "NOT met"
        print(
            f"requires  {'  ' * depth}{key} = {want!r}: {mark} (served {got.variant!r}, "
            f"{got.reason.value}{': ' + got.detail if got.detail else ''})"
        )
    if rule is not None:
        print(f"rule      #{d.rule_index}: {rule_summary(rule)}")
        print(f"          {rule_words(rule, flag)}")
        if rule.rollout is not None:
            print(f"rollout   {describe(rule.rollout)}")
    if data["bucket"] is not None:
        note = "" if d.reason is Reason.SPLIT else " (no split decided this)"
        print(f"bucket    {data['bucket']} of 10000, {ALGORITHM}{note}")
    if override is not None:
        forced = repr(override["variant"]) if override.get("variant") else "the override"
        caveat = override.get("reason")  # when honoured: e.g. unsigned, debug mode only
        if override.get("honoured"):
            print(f"override  {forced} honoured" + (f" ({caveat})" if caveat else ""))
        else:
            print(f"override  {forced} refused: {caveat}")
    return 0


def _rollout_dict(rollout: Any) -> dict[str, Any]:
    return {
        "stage": rollout.stage,
        "stages": list(rollout.stages),
        "share": rollout.share,
        "treatment": rollout.treatment,
        "control": rollout.control,
        "hold_seconds": rollout.hold,
        "summary": describe(rollout),
    }


def _override_info(args: argparse.Namespace, snapshot: Any) -> dict[str, Any] | None:
    if not args.override:
        return None
    try:
        from ..overrides import explain_override
    except ImportError:  # pragma: no cover - overrides ship with the package
        raise CommandError("overrides are not available in this build") from None
    # Signed tokens are checked with $RAMPUP_OVERRIDE_SECRET; a bound one against --id.
    raw = os.environ.get(args.secret_env, "")
    secrets = tuple(x.strip() for x in raw.split(",") if x.strip())
    return explain_override(snapshot, args.flag, args.override, subject=args.key, secrets=secrets)
