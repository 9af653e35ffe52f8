"""QA overrides: force variants for your own requests by header, cookie or W3C baggage.

``X-Rampup-Override: new-checkout=on, checkout-button=green`` (or the same in the
``rampup_override`` cookie) forces those variants, with reason OVERRIDE. Items are unsigned
``flag=variant`` entries or signed tokens from ``rampup sign`` (format: :mod:`rampup._signing`).

Policy (``Settings.overrides``): ``"auto"`` (default) honours signed overrides when a secret is
configured (``override_secret``, else the framework's ``SECRET_KEY``) and, in debug mode,
unsigned ones too; with no secret outside debug mode overrides are off. ``"signed"``: signed
only, even in debug. ``"open"``: unsigned too (logs a warning outside debug). ``"off"``.

Precedence: kill switch > override > rules > default; a flag with ``overridable = false``
refuses overrides, signed or not. Values are read in the order header, cookie (or the query
parameter, which replaces it), baggage, each left to right: the first authentic mention of a
flag wins and later ones are refused as duplicates. Bad input never fails a request: each
refused item gets a reason, and the request goes on as if it had not been sent.

Core module: imports no web framework.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._request import RequestFlags, Settings
from ._signing import (
    MAKE_SECRET,
    MIN_SECRET_BYTES,
    Outcome,
    Reading,
    baggage_value,
    derive_keys,
    short_secrets,
)
from .engine import Snapshot

__all__ = [
    "NO_OVERRIDES",
    "OverrideReader",
    "OverrideState",
    "explain_override",
    "read_values",
    "reader_for",
]

log = logging.getLogger("rampup")

#: The report header is cut here, so a response header never grows without bound.
MAX_REPORT = 4096
# What a Set-Cookie value may hold unquoted: RFC 6265 cookie-octets, plus the commas between
# entries, which browsers keep (they read a cookie's value up to the next ';').
_COOKIE_SAFE = re.compile(r"^[\x21\x23-\x3a\x3c-\x5b\x5d-\x7e]+$")


class OverrideState:
    """What one request's overrides came to: what is served, and the report."""

    __slots__ = ("authorized", "outcomes", "served", "set_cookie")

    def __init__(
        self,
        served: Mapping[str, str],
        outcomes: tuple[Outcome, ...] = (),
        authorized: bool = False,
        set_cookie: str | None = None,
    ) -> None:
        self.served = served  #: flag -> forced variant (the Snapshot still has the last word)
        self.outcomes = outcomes
        self.authorized = authorized  #: a valid signed override came with the request
        self.set_cookie = set_cookie  #: the Set-Cookie the query parameter asked for

    def variant_for(self, key: str) -> str | None:
        """The variant forced for ``key``, or None."""
        return self.served.get(key)

    def report(self) -> str:
        """The report header's value: ``served f=v (header); refused g=w (cookie): why``."""
        text = "; ".join(map(str, self.outcomes))
        if len(text) <= MAX_REPORT:
            return text
        cut = text.rfind("; ", 0, MAX_REPORT - 40)
        if cut < 0:
            return text[: MAX_REPORT - 4] + " ..."
        return f"{text[:cut]}; ... {text[cut:].count('; ')} more"


#: The state of every request that sent no override: shared and immutable.
NO_OVERRIDES = OverrideState(MappingProxyType({}))


def read_values(
    values: list[tuple[str, str]],
    snapshot: Snapshot,
    keys: tuple[bytes, ...] = (),
    *,
    allow_unsigned: bool = False,
    now: float | None = None,
    subject: str | None = None,
) -> OverrideState:
    """The overrides in ``values`` ((raw value, source name) pairs by precedence), for tests
    and tools; the middleware goes through :class:`OverrideReader`."""
    reading = Reading(keys, allow_unsigned, time.time() if now is None else now, lambda: subject)
    for value, source in values:
        reading.add(value, source)
    served, outcomes = reading.settle(snapshot)
    return OverrideState(served, outcomes, reading.tokens > 0)


class OverrideReader:
    """Reads one request's overrides under one policy; built once per middleware."""

    __slots__ = ("_attrs", "allow_unsigned", "debug", "eager", "keys", "settings")

    def __init__(self, settings: Settings, keys: tuple[bytes, ...], allow_unsigned: bool) -> None:
        self.settings = settings
        self.keys = keys
        self.allow_unsigned = allow_unsigned
        self.debug = bool(settings.debug)
        #: read overrides at response time even if no flag was read: the query parameter must
        #: set its cookie, and debug mode always shows the report
        self.eager = self.debug or bool(settings.override_query_param)
        attrs = [f"Path={settings.cookie_path}", "HttpOnly", f"SameSite={settings.cookie_samesite}"]
        if settings.cookie_domain:
            attrs.append(f"Domain={settings.cookie_domain}")
        self._attrs = "; ".join(attrs)

    def read(self, f: RequestFlags) -> OverrideState:
        """This request's overrides (called once, when the first flag is read). Never raises."""
        try:
            return self._read(f)
        except Exception:
            log.exception("rampup: reading overrides failed; ignoring them")
            return OverrideState({}, (Outcome("overrides", "rampup", "internal error"),))

    def _read(self, f: RequestFlags) -> OverrideState:
        s, view = self.settings, f.view
        values: list[tuple[str, str]] = []
        header = view.header(s.override_header)
        if header is not None:
            values.append((header, "header"))
        query = view.query(s.override_query_param) if s.override_query_param else None
        if query is not None:
            query = query.strip()
            if query:
                values.append((query, "query"))
        else:
            cookie = view.cookie(s.override_cookie)
            if cookie is not None:
                # http.cookies (Django) and Werkzeug quote a value holding commas and write
                # each comma as \054; the view strips the quotes, this undoes the escape.
                values.append((cookie.replace("\\054", ","), "cookie"))
        refusal = None
        if s.override_baggage:
            baggage, refusal = baggage_value(view.header("baggage"))
            if baggage is not None:
                values.append((baggage, "baggage"))
        if not values and query is None and refusal is None:
            return NO_OVERRIDES
        now = time.time()
        reading = Reading(
            self.keys, self.allow_unsigned, now, lambda: f.subject.key, s.override_max_ttl
        )
        if refusal is not None:
            reading.outcomes.append(Outcome("baggage", "baggage", refusal))
        query_read: tuple[int, int, int | None] = (0, 0, None)
        for value, source in values:
            got = reading.add(value, source)
            if source == "query":
                query_read = got
        set_cookie = None
        if query is not None:
            set_cookie = self._cookie(f, query, query_read, now, reading.outcomes)
        served, outcomes = reading.settle(f.snapshot)
        return OverrideState(served, outcomes, reading.tokens > 0, set_cookie)

    def _cookie(
        self,
        f: RequestFlags,
        query: str,
        read: tuple[int, int, int | None],
        now: float,
        out: list[Outcome],
    ) -> str | None:
        """The Set-Cookie the query parameter asks for: cleared when empty, set only when every
        item authenticated (so a link cannot plant a cookie this app would refuse anyway)."""
        s = self.settings
        secure = s.cookie_secure if s.cookie_secure is not None else f.view.scheme == "https"
        tail = f"{self._attrs}; Secure" if secure else self._attrs
        if not query:
            return f"{s.override_cookie}=; Max-Age=0; {tail}"
        good, bad, expires = read
        value = ",".join(i for i in (p.strip() for p in query.split(",")) if i)
        if bad or not good or not _COOKIE_SAFE.match(value):
            out.append(Outcome(s.override_cookie, "query", "cookie not set: nothing valid to keep"))
            return None
        # A signed cookie lives as long as its token; an unsigned one for the browser session.
        age = "" if expires is None else f"Max-Age={max(int(expires - now), 0)}; "
        return f"{s.override_cookie}={value}; {age}{tail}"

    def response_headers(self, f: RequestFlags) -> list[tuple[str, str]]:
        """The override cookie to set, and the report where it may be shown: always in debug
        mode, otherwise only to a request that carried a valid signed override."""
        state = f.read_overrides()
        if state is None:  # the request sent none
            return []
        out: list[tuple[str, str]] = []
        if state.set_cookie is not None:
            out.append(("Set-Cookie", state.set_cookie))
        if state.outcomes and (self.debug or state.authorized):
            out.append((self.settings.override_report_header, state.report()))
        return out


def reader_for(settings: Settings) -> OverrideReader | None:
    """The override reader ``settings`` ask for, or None when overrides are off.

    Raises ValueError for ``overrides="signed"`` without a secret, an unknown policy, or a
    configured secret shorter than 32 bytes outside debug mode (a short framework secret under
    the default policy turns signed overrides off with an error instead).
    """
    policy = settings.overrides
    secrets = settings.override_secret or settings.framework_secret
    keys = derive_keys(secrets)
    debug = bool(settings.debug)
    if policy == "off":
        return None
    short = short_secrets(secrets)
    if short:
        which = "override_secret" if settings.override_secret else "the framework's SECRET_KEY"
        message = (
            f"rampup: {which} has a secret of {min(short)} bytes; overrides need at least "
            f"{MIN_SECRET_BYTES} outside debug mode (a short secret can be guessed from a "
            f"single token). Make one with: {MAKE_SECRET}"
        )
        if debug:
            log.warning("%s (allowed in debug mode only)", message)
        elif settings.override_secret or policy == "signed":
            raise ValueError(message)
        else:  # a short SECRET_KEY the app never meant for overrides: do not fail the app
            log.error("%s; signed overrides are off", message)
            return None if policy == "auto" else OverrideReader(settings, (), True)
    if policy == "auto":
        if not keys and not debug:
            return None  # no secret outside debug mode: nobody could be authorized
        return OverrideReader(settings, keys, allow_unsigned=debug)
    if policy == "signed":
        if not keys:
            raise ValueError(
                "rampup: overrides='signed' needs a secret: set override_secret (or the "
                "framework's SECRET_KEY), or choose overrides='off'"
            )
        return OverrideReader(settings, keys, allow_unsigned=False)
    if policy == "open":
        if not debug:
            log.warning(
                "rampup: overrides='open' outside debug mode: anyone can force any overridable "
                "flag with the %s header or the %s cookie; use 'auto' or 'signed' in production",
                settings.override_header,
                settings.override_cookie,
            )
        return OverrideReader(settings, keys, allow_unsigned=True)
    raise ValueError(
        f"rampup: overrides={policy!r}; expected one of 'auto', 'off', 'signed', 'open'"
    )


def explain_override(
    snapshot: Snapshot,
    flag: str,
    override_value: str,
    *,
    subject: str | None = None,
    secrets: str | tuple[str, ...] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Would ``override_value`` force ``flag``? Backs ``rampup explain --override``.

    Signed tokens are checked with ``secrets``, else ``$RAMPUP_OVERRIDE_SECRET``. Returns
    ``honoured``, ``variant``, ``reason`` (why refused, or a note), ``signed`` and ``report``.
    """
    if secrets is None:
        secrets = os.environ.get("RAMPUP_OVERRIDE_SECRET")
    state = read_values(
        [(override_value, "override")],
        snapshot,
        derive_keys(secrets),
        allow_unsigned=True,
        now=now,
        subject=subject,
    )
    mine = [o for o in state.outcomes if o.flag == flag]
    hit = next((o for o in mine if o.reason is None), mine[0] if mine else None)
    result: dict[str, Any] = {
        "honoured": False,
        "variant": None,
        "reason": None,
        "signed": False,
        "report": [str(o) for o in state.outcomes],
    }
    if hit is not None:
        result.update(
            honoured=hit.reason is None, variant=hit.variant, signed=hit.signed, reason=hit.reason
        )
        if hit.reason is None and not hit.signed:
            result["reason"] = "unsigned: honoured only in debug mode or with overrides='open'"
    elif any(o.flag is None for o in state.outcomes):
        result["reason"] = "; ".join(o.reason or "" for o in state.outcomes if o.flag is None)
    else:
        result["reason"] = f"the override does not mention {flag!r}"
    return result
