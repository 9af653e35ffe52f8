"""The options every adapter takes, as one public, typed, frozen type: :class:`Options`.

Adapters take them as keyword arguments (``RampupMiddleware(app, flags=..., user_header=...)``,
typed by :class:`OptionsDict`, so mypy flags ``user_headr=``); Flask reads them from
``app.config["RAMPUP_<NAME>"]`` and Django from ``settings.RAMPUP = {"<NAME>": ...}``. A name
that is not an option is refused at construction with a "did you mean" hint.

Request layer: imports nothing but the core.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from .context import Listener

__all__ = [
    "DEFAULT_MAX_AGE",
    "Options",
    "OptionsDict",
    "OverridePolicy",
    "SameSite",
    "unknown_names",
]

#: Two years, like most analytics ids: long enough that a visitor keeps their bucket.
DEFAULT_MAX_AGE = 2 * 365 * 24 * 3600

#: ``Options.overrides``: see :mod:`rampup.overrides`.
OverridePolicy = Literal["auto", "off", "signed", "open"]
#: ``Options.cookie_samesite`` (compared case-insensitively at run time).
SameSite = Literal["Lax", "Strict", "None"]


@dataclass(frozen=True, slots=True)
class Options:
    """Options shared by every adapter.

    ``user_header``: header carrying the user id (only behind a gateway that sets it), e.g.
    ``X-User-Id``. ``user_cookie``: cookie carrying the user id. ``user``: callback given the
    framework's request; returns a key, a Subject, a mapping with ``key``, or None.

    ``cookie_*``: the anonymous id cookie (name, domain, path, max age in seconds, Secure -
    None: only on https - and SameSite).

    ``overrides``: the QA override policy (:mod:`rampup.overrides`): ``"auto"`` (signed when
    a secret is available, unsigned too in debug mode; off with neither), ``"off"``,
    ``"signed"``, ``"open"``. ``override_secret``: secret(s) signing overrides, several for
    rotation (the first signs, all verify). ``framework_secret``: the framework's own secret
    (Flask/Django ``SECRET_KEY``), used when ``override_secret`` is unset.
    ``override_header``/``override_cookie``: where overrides are read.
    ``override_query_param``: opt-in query parameter that sets or clears the override cookie.
    ``override_report_header``: response header listing overrides served/refused (debug, or an
    authorized tester). ``override_baggage``: also read W3C baggage ``rampup.override``.
    ``override_max_ttl``: the longest lifetime, in seconds, a signed override may have left
    (default 30 days); a token living longer is refused.

    ``debug``: the app runs in debug mode (None: the adapter asks the framework at the first
    request). ``listeners``: told of each decision and request. ``watch``: reload the flag file
    when it changes. ``telemetry``: ``"auto"`` (the default: OpenTelemetry on when
    ``opentelemetry-api`` is importable), ``True``/``"on"``, ``False``/``"off"``, or a listener
    such as ``RampupTelemetry(...)``; see ``docs/telemetry.md``. The outcome book
    (:mod:`rampup.outcomes`) counts every request whatever this says.

    ``environment``: the flag file's environment whose overlays apply
    (``[environments.<name>]``, see ``docs/flag-file-advanced.md``); None reads ``$RAMPUP_ENV``,
    and an empty name (or neither) serves the base flags. A name the file does not define is
    an error at load.
    """

    user_header: str | None = None
    user_cookie: str | None = None
    user: Callable[[Any], Any] | None = None
    cookie_name: str = "rampup_id"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_max_age: int = DEFAULT_MAX_AGE
    cookie_secure: bool | None = None
    cookie_samesite: SameSite = "Lax"
    overrides: OverridePolicy = "auto"
    override_secret: str | tuple[str, ...] | None = None
    framework_secret: str | None = None
    override_header: str = "X-Rampup-Override"
    override_cookie: str = "rampup_override"
    override_query_param: str | None = None
    override_report_header: str = "X-Rampup-Overrides"
    override_baggage: bool = False
    override_max_ttl: int = 30 * 24 * 3600
    debug: bool | None = None
    listeners: tuple[Listener, ...] = ()
    watch: bool = True
    telemetry: Literal["auto"] | bool | object = "auto"
    environment: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "keyword argument") -> Options:
        """Build from a mapping of option names; an unknown name raises TypeError with a
        "did you mean" hint and the known names."""
        unknown = unknown_names(options, NAMES, where)
        if unknown:
            raise TypeError(unknown)
        values = dict(options)
        if "listeners" in values:
            values["listeners"] = tuple(values["listeners"] or ())
        return cls(**values)

    def __post_init__(self) -> None:
        # Checked here, at start-up, so a typo never reaches a response header.
        if self.overrides not in ("auto", "off", "signed", "open"):
            raise ValueError(
                f"rampup: overrides={self.overrides!r}; expected one of 'auto', 'off', "
                "'signed', 'open'"
            )
        if str(self.cookie_samesite).lower() not in ("lax", "strict", "none"):
            raise ValueError(
                f"rampup: cookie_samesite={self.cookie_samesite!r}; expected 'Lax', 'Strict' "
                "or 'None'"
            )
        if self.user is not None and not callable(self.user):
            raise ValueError(f"rampup: user={self.user!r} must be a callable given the request")


#: Every option name.
NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Options))


class OptionsDict(TypedDict, total=False):
    """The fields of :class:`Options` as keyword arguments (``**options: Unpack[OptionsDict]``
    in adapters' signatures, so a type checker catches a misspelt option)."""

    user_header: str | None
    user_cookie: str | None
    user: Callable[[Any], Any] | None
    cookie_name: str
    cookie_domain: str | None
    cookie_path: str
    cookie_max_age: int
    cookie_secure: bool | None
    cookie_samesite: SameSite
    overrides: OverridePolicy
    override_secret: str | tuple[str, ...] | None
    framework_secret: str | None
    override_header: str
    override_cookie: str
    override_query_param: str | None
    override_report_header: str
    override_baggage: bool
    override_max_ttl: int
    debug: bool | None
    listeners: Iterable[Listener]
    watch: bool
    telemetry: Literal["auto"] | bool | object
    #: the flag file's environment (``[environments.<name>]``); None reads ``$RAMPUP_ENV``
    environment: str | None


def unknown_names(
    given: Iterable[str], known: Iterable[str], where: str, spell: Callable[[str], str] = str
) -> str | None:
    """The error message for names in ``given`` that are not in ``known`` (None: all known),
    each with its closest known name; ``spell`` writes a name as the user types it (e.g.
    ``RAMPUP_USER_HEADER``)."""
    known_set = set(known)
    bad = sorted(n for n in given if n not in known_set)
    if not bad:
        return None
    spelt = sorted(spell(n) for n in known_set)
    hints = []
    for name in bad:
        close = difflib.get_close_matches(spell(name), spelt, n=1)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"rampup: unknown {where}{'s' if len(bad) > 1 else ''} {', '.join(hints)}; known: " + (
        ", ".join(spelt)
    )
