"""The wire format of QA overrides: values, entries and signed tokens (no I/O, no policy).

A value (a header, a cookie, a baggage member) is a comma-separated list of items, each either
an unsigned ``flag=variant`` entry or a signed token ``v1.<payload>.<mac>`` (base64url without
padding; a token never contains ``=`` or ``,``, so both may share one value).

The payload is compact JSON: ``{"e": <expiry, unix seconds>, "o": "<flag=variant,...>"}``
plus ``"s": "<subject key>"`` when the token is bound to one subject. The mac is
HMAC-SHA256 over the ASCII bytes ``v1.<payload>`` (the encoded payload, so nothing untrusted is
decoded before it is authenticated), keyed with a key derived from the configured secret::

    key = HMAC-SHA256(secret.encode("utf-8"), b"rampup.override.v1")

Deriving a purpose-specific key means a Flask or Django ``SECRET_KEY`` that also signs sessions
never produces a mac that is valid here, and the other way round. Any language with HMAC and
base64 can mint or check a token from this description.

Every value is untrusted: it is size-capped, and each item that is refused gets an
:class:`Outcome` with a reason, safe to echo in a response header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from urllib.parse import unquote

from .config import KEY_PATTERN, VARIANT_PATTERN
from .engine import Snapshot

__all__ = [
    "BAGGAGE_KEY",
    "MAKE_SECRET",
    "MAX_ENTRIES",
    "MAX_TTL",
    "MAX_VALUE",
    "MIN_SECRET_BYTES",
    "PREFIX",
    "Outcome",
    "Reading",
    "Token",
    "baggage_value",
    "derive_key",
    "derive_keys",
    "parse_entry",
    "short_secrets",
    "sign",
    "verify",
]

#: Values longer than this are refused whole (browsers cap a cookie at 4 KB).
MAX_VALUE = 4096
#: Entries past this many in one value are refused (QA never needs more).
MAX_ENTRIES = 50
#: The W3C baggage limits: 8192 bytes, 180 members.
MAX_BAGGAGE = 8192
MAX_BAGGAGE_MEMBERS = 180
BAGGAGE_KEY = "rampup.override"

#: Every token starts with this; it never contains ``=`` or ``,``, so it cannot be mistaken
#: for a ``flag=variant`` entry and may share one header with them.
PREFIX = "v1."
_PURPOSE = b"rampup.override.v1"
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
#: 32 bytes of HMAC-SHA256 in unpadded base64url
_MAC_LEN = 43
#: the subject key cap of rampup.subject.MAX_KEY
_MAX_SUBJECT = 256
#: The longest lifetime a token may have left: a signed override should outlive a test
#: session, not a release. ``rampup sign --ttl`` caps at it; ``verify`` refuses longer ones.
MAX_TTL = 30 * 24 * 3600
#: Secrets shorter than this are refused outside debug mode: a 1-character secret was
#: recovered from one token in under 1 ms. ``secrets.token_urlsafe(32)`` gives 43 characters.
MIN_SECRET_BYTES = 32
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True, slots=True)
class Token:
    """The authenticated content of a token."""

    overrides: str
    expires: int
    subject: str | None = None


def derive_key(secret: str | bytes) -> bytes:
    """The HMAC key for ``secret`` (see the module docstring; a str is UTF-8 encoded)."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


def derive_keys(secrets: str | bytes | Iterable[str | bytes] | None) -> tuple[bytes, ...]:
    """Keys for every non-empty secret, in order: the first signs, all of them verify."""
    if secrets is None:
        return ()
    if isinstance(secrets, str | bytes):
        secrets = (secrets,)
    return tuple(derive_key(s) for s in secrets if isinstance(s, str | bytes) and s)


def short_secrets(secrets: str | bytes | Iterable[str | bytes] | None) -> list[int]:
    """The lengths in bytes of the configured secrets shorter than :data:`MIN_SECRET_BYTES`."""
    if secrets is None:
        return []
    if isinstance(secrets, str | bytes):
        secrets = (secrets,)
    out = []
    for s in secrets:
        if isinstance(s, str | bytes) and s:
            n = len(s.encode("utf-8") if isinstance(s, str) else s)
            if n < MIN_SECRET_BYTES:
                out.append(n)
    return out


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()


def sign(overrides: str, expires: int, secret: str, subject: str | None = None) -> str:
    """A token carrying ``overrides`` until ``expires`` (unix seconds), optionally bound to
    ``subject``, signed with ``secret``."""
    payload: dict[str, object] = {"e": int(expires), "o": overrides}
    if subject is not None:
        payload["s"] = subject
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    signed_part = PREFIX + _b64encode(body.encode("ascii"))
    return f"{signed_part}.{_b64encode(_mac(derive_key(secret), signed_part))}"


def verify(
    token: str, keys: tuple[bytes, ...], now: float, max_ttl: int = MAX_TTL
) -> tuple[Token | None, str]:
    """``(Token, "")`` when ``token`` is authentic, unexpired and expires within ``max_ttl``
    seconds of ``now``, else ``(None, reason)``.

    Every key is tried (rotation: sign with the new secret, keep the old one configured until
    its tokens expire), each with :func:`hmac.compare_digest`.
    """
    if not keys:
        return None, "signed override, but no secret is configured to verify it"
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX[:-1]:
        return None, "malformed token (expected v1.<payload>.<signature>)"
    _, body, mac_text = parts
    if not _B64.match(body) or not _B64.match(mac_text) or len(mac_text) != _MAC_LEN:
        return None, "malformed token (broken base64)"
    signed_part = f"{PREFIX}{body}"
    # Compared as canonical text, not decoded bytes: unpadded base64 has spare low bits in its
    # last character, and a token that differs anywhere must not verify. No early exit: the
    # time taken does not depend on which key, if any, matched.
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(_b64encode(_mac(key, signed_part)), mac_text)
    if not ok:
        return None, "bad signature (tampered, or signed with a secret not configured here)"
    try:
        data = json.loads(_b64decode(body))
    except (binascii.Error, ValueError):
        return None, "malformed token payload"
    if not isinstance(data, dict):
        return None, "malformed token payload"
    expires, overrides, subject = data.get("e"), data.get("o"), data.get("s")
    if (
        isinstance(expires, bool)
        or not isinstance(expires, int)
        or not isinstance(overrides, str)
        or not (subject is None or (isinstance(subject, str) and len(subject) <= _MAX_SUBJECT))
    ):
        return None, "malformed token payload"
    if expires <= now:
        return None, f"expired {int(now - expires)}s ago"
    if expires - now > max_ttl:
        # A leaked token must not work forever: sign() can mint any expiry, this cannot.
        return None, f"lives too long (expires in {_span(expires - now)}; max {_span(max_ttl)})"
    return Token(overrides, expires, subject), ""


def _span(seconds: float) -> str:
    """``3 days``, ``5 hours`` or ``90 seconds``: a lifetime as a person reads it."""
    for unit, size in (("days", 86400), ("hours", 3600)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} seconds"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One line of the report: an entry served or refused, or a whole item refused.

    An authentic entry waiting for :meth:`Reading.settle` has ``flag`` set and no ``reason``.
    """

    text: str
    source: str
    reason: str | None = None  #: why it was refused; None: served
    signed: bool = False
    flag: str | None = None
    variant: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}, signed" if self.signed else self.source
        if self.reason is None:
            return f"served {self.text} ({where})"
        return f"refused {self.text} ({where}): {self.reason.replace(';', ',')}"


def show(text: str, limit: int = 60) -> str:
    """Untrusted text made safe to echo in a header: printable ASCII, no separators, short."""
    safe = "".join(c if " " <= c <= "~" and c not in ";," else "?" for c in text[:limit])
    return safe + "..." if len(text) > limit else safe


def parse_entry(item: str) -> tuple[str, str] | str:
    """``flag=variant`` -> (flag, variant), or why it is not one."""
    if not item.isascii() or not item.isprintable():
        return "non-ASCII or control characters"
    flag, sep, variant = item.partition("=")
    flag, variant = flag.strip(), variant.strip()
    if not sep or not KEY_PATTERN.match(flag) or not VARIANT_PATTERN.match(variant):
        return "malformed (expected flag=variant)"
    return flag, variant


def split_items(value: str, source: str, out: list[Outcome]) -> list[str]:
    """The non-empty items of ``value``, capped; refusals of oversize go to ``out``."""
    if len(value) > MAX_VALUE:
        out.append(Outcome(source, source, f"too long ({len(value)} chars; max {MAX_VALUE})"))
        return []
    items = [i for i in (part.strip() for part in value.split(",")) if i]
    if len(items) > MAX_ENTRIES:
        extra = len(items) - MAX_ENTRIES
        out.append(Outcome(f"{extra} more entries", source, f"max {MAX_ENTRIES} per value"))
        del items[MAX_ENTRIES:]
    return items


_UNSIGNED = "unsigned (this app requires signed overrides: see `rampup sign`)"


class Reading:
    """Reads the override values of one request, in precedence order, into outcomes."""

    __slots__ = (
        "allow_unsigned",
        "keys",
        "max_ttl",
        "now",
        "outcomes",
        "subject_key",
        "tokens",
    )

    def __init__(
        self,
        keys: tuple[bytes, ...],
        allow_unsigned: bool,
        now: float,
        subject_key: Callable[[], str | None],
        max_ttl: int = MAX_TTL,
    ) -> None:
        self.keys = keys
        self.max_ttl = max_ttl
        self.allow_unsigned = allow_unsigned
        self.now = now
        self.subject_key = subject_key  # called only for tokens bound to a subject
        self.outcomes: list[Outcome] = []
        #: authentic signed tokens read (bound to this subject or to another): one makes the
        #: request authorized to see the report, which then says why a bound token was refused
        self.tokens = 0

    def add(self, value: str, source: str) -> tuple[int, int, int | None]:
        """Read one value. Returns (authentic entries, items failing authentication, earliest
        expiry of its valid tokens)."""
        out = self.outcomes
        good = bad = 0
        expires: int | None = None
        for item in split_items(value, source, out):
            if "=" in item or not item.startswith(PREFIX):
                parsed = parse_entry(item)
                if isinstance(parsed, str):
                    out.append(Outcome(show(item), source, parsed))
                    continue
                why = None if self.allow_unsigned else _UNSIGNED
                out.append(Outcome("=".join(parsed), source, why, False, *parsed))
                good, bad = (good + 1, bad) if why is None else (good, bad + 1)
                continue
            token, why = verify(item, self.keys, self.now, self.max_ttl)
            if token is not None and token.subject not in (None, self.subject_key()):
                # Authentic, so its holder may read why it was refused (nothing secret in it).
                self.tokens += 1
                token, why = None, "bound to another subject"
            if token is None:
                out.append(Outcome(f"token {show(item, 20)}", source, why, signed=True))
                bad += 1
                continue
            self.tokens += 1
            expires = token.expires if expires is None else min(expires, token.expires)
            for sub in split_items(token.overrides, source, out):
                parsed = parse_entry(sub)
                if isinstance(parsed, str):
                    out.append(Outcome(show(sub), source, parsed, signed=True))
                else:
                    out.append(Outcome("=".join(parsed), source, None, True, *parsed))
                    good += 1
        return good, bad, expires

    def settle(self, snapshot: Snapshot) -> tuple[dict[str, str], tuple[Outcome, ...]]:
        """Check authentic entries against ``snapshot`` in order (the first mention of a flag
        wins); returns what is served and the outcomes to report."""
        served: dict[str, str] = {}
        claimed: dict[str, str] = {}
        final: list[Outcome] = []
        for o in self.outcomes:
            flag, variant = o.flag, o.variant
            if o.reason is not None or flag is None or variant is None:
                final.append(o)  # refused already, before the snapshot had a say
            elif flag in claimed:
                final.append(
                    replace(o, reason=f"duplicate ({flag} already set by {claimed[flag]})")
                )
            else:
                claimed[flag] = o.source
                why = snapshot.override_refusal(flag, variant)
                if why is None:
                    served[flag] = variant
                final.append(o if why is None else replace(o, reason=why))
        return served, tuple(final)


def baggage_value(header: str | None) -> tuple[str | None, str | None]:
    """The ``rampup.override`` member of a W3C ``baggage`` header, percent-decoded, as
    (value, None); (None, reason) for an oversized header carrying one; (None, None) if absent."""
    if not header or BAGGAGE_KEY not in header:
        return None, None
    if len(header) > MAX_BAGGAGE:
        return None, f"baggage header too long ({len(header)} chars; max {MAX_BAGGAGE})"
    for member in header.split(",", MAX_BAGGAGE_MEMBERS)[:MAX_BAGGAGE_MEMBERS]:
        key, sep, rest = member.partition("=")
        if sep and key.strip() == BAGGAGE_KEY:
            return unquote(rest.split(";", 1)[0].strip()), None
    return None, None
