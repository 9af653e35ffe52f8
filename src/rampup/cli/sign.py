"""``rampup sign "flag=variant,..." --ttl 2h``: mint a signed QA override.

The secret comes from an environment variable (``--secret-env``, default
``RAMPUP_OVERRIDE_SECRET``), never from the command line, so it stays out of shell history.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from typing import Any

from .._signing import MAKE_SECRET, MAX_ENTRIES, MAX_TTL, PREFIX, parse_entry, short_secrets, sign
from . import CommandError
from ._common import emit_json, load_file

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TTL = re.compile(r"^(?:\d+[smhd])+$")


def register(sub: Any) -> None:
    """Add the ``sign`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "sign",
        help="mint a signed QA override",
        description="Sign overrides for the X-Rampup-Override header or the rampup_override "
        "cookie. The secret is read from an environment variable.",
    )
    p.add_argument("spec", help='the overrides, e.g. "new-checkout=on,checkout-button=green"')
    p.add_argument("--ttl", default="1h", help="lifetime, e.g. 90s, 15m, 2h, 1d, 1h30m (max 30d)")
    p.add_argument(
        "--secret-env",
        default="RAMPUP_OVERRIDE_SECRET",
        metavar="NAME",
        help="environment variable holding the secret (default RAMPUP_OVERRIDE_SECRET)",
    )
    p.add_argument("--subject", metavar="KEY", help="bind the override to this subject key")
    p.add_argument("--check", metavar="FILE", help="refuse overrides this flag file would refuse")
    p.add_argument("--header", default="X-Rampup-Override", help="the app's override header")
    p.add_argument("--cookie", default="rampup_override", help="the app's override cookie")
    p.add_argument("--url", default="http://127.0.0.1:8000/", help="URL for the curl example")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def parse_ttl(text: str) -> int:
    """``"1h30m"`` -> 5400; plain digits are seconds. Raises CommandError (usage)."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text)
    elif _TTL.match(text):
        seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", text))
    else:
        raise CommandError(f"--ttl expects e.g. 90s, 15m, 2h, 1d or 1h30m; got {text!r}", 2)
    if not 0 < seconds <= MAX_TTL:
        raise CommandError(f"--ttl must be between 1s and 30d; got {text!r}", 2)
    return seconds


def parse_spec(spec: str) -> list[tuple[str, str]]:
    """``"a=on, b=green"`` -> [("a", "on"), ("b", "green")]. Raises CommandError (usage)."""
    entries: list[tuple[str, str]] = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        if "=" not in item and item.startswith(PREFIX):
            raise CommandError("the spec is a token already; sign flag=variant entries", 2)
        parsed = parse_entry(item)
        if isinstance(parsed, str):
            raise CommandError(f"bad override {item!r}: {parsed}", 2)
        if any(flag == parsed[0] for flag, _ in entries):
            raise CommandError(f"flag {parsed[0]!r} is listed twice", 2)
        entries.append(parsed)
    if not entries:
        raise CommandError(
            'nothing to sign; expected e.g. "new-checkout=on,checkout-button=green"', 2
        )
    if len(entries) > MAX_ENTRIES:
        raise CommandError(f"at most {MAX_ENTRIES} overrides per token", 2)
    return entries


def run(args: argparse.Namespace) -> int:
    """Print a signed override token as a header, a cookie, a curl command and a browser snippet."""
    entries = parse_spec(args.spec)
    ttl = parse_ttl(args.ttl)
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise CommandError(
            f"no secret: set the environment variable {args.secret_env} to the app's override "
            "secret (or pass --secret-env NAME)"
        )
    if short_secrets(secret):
        print(
            f"rampup: warning: the secret in {args.secret_env} is shorter than 32 bytes; an app "
            f"outside debug mode refuses it. Make one with: {MAKE_SECRET}",
            file=sys.stderr,
        )
    if args.check:
        snapshot = load_file(args.check)
        refused = [
            f"{flag}={variant}: {why}"
            for flag, variant in entries
            if (why := snapshot.override_refusal(flag, variant)) is not None
        ]
        if refused:
            raise CommandError(f"{args.check} would refuse: " + "; ".join(refused))
    expires = int(time.time()) + ttl
    token = sign(",".join(f"{f}={v}" for f, v in entries), expires, secret, args.subject)
    header = f"{args.header}: {token}"
    cookie = f"Cookie: {args.cookie}={token}"
    curl = f"curl -H {shlex.quote(header)} {shlex.quote(args.url)}"
    console = f'document.cookie = "{args.cookie}={token}; path=/; max-age={ttl}"'
    at = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.json:
        emit_json(
            {
                "token": token,
                "overrides": dict(entries),
                "expires": expires,
                "expires_at": at,
                "subject": args.subject,
                "header": header,
                "cookie": cookie,
                "curl": curl,
                "browser": console,
            }
        )
        return 0
    print(header)
    print(cookie)
    bound = f"; only for subject {args.subject!r}" if args.subject else ""
    print(f"# expires {at} (in {args.ttl.strip()}){bound}")
    print(f"# {curl}")
    print(f"# browser console: {console}")
    return 0
