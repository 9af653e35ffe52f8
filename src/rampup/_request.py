"""What every adapter shares: open a request (Flags over the current snapshot and a request
view), and close it (the headers to add, the outcome to report).

Adapters translate their framework's request into a :class:`~rampup.subject.RequestView` and
call :meth:`Runtime.open` / :meth:`Runtime.response_headers` / :meth:`Runtime.finish`. They
decide nothing themselves. Nothing here raises into the host app: failures are logged and the
request goes on with defaults.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol
from weakref import ReferenceType

from .context import _NO_FORCED, Flags, Listener
from .model import Reason, Subject
from .sources import Source, as_source
from .subject import (
    RequestAttributes,
    RequestView,
    attributes_of,
    clean_key,
    mint_anonymous_id,
    subject_from,
    valid_anonymous_id,
)

__all__ = ["RequestFlags", "RequestListener", "Runtime", "Settings"]

log = logging.getLogger("rampup")

#: Two years, like most analytics ids: long enough that a visitor keeps their bucket.
DEFAULT_MAX_AGE = 2 * 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Settings:
    """Options shared by every adapter (Flask reads them from ``RAMPUP_<NAME>``, Django from
    ``RAMPUP = {...}``, ASGI/WSGI from keyword arguments)."""

    #: header carrying the user id (only behind a gateway that sets it), e.g. ``X-User-Id``
    user_header: str | None = None
    #: cookie carrying the user id
    user_cookie: str | None = None
    #: callback given the framework request; returns a key, a Subject, a mapping or None
    user: Callable[[Any], Any] | None = None
    #: anonymous id cookie: name, domain, path, max age, Secure (None: on https only), SameSite
    cookie_name: str = "rampup_id"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_max_age: int = DEFAULT_MAX_AGE
    cookie_secure: bool | None = None
    cookie_samesite: str = "Lax"
    #: QA override policy (see rampup.overrides): "auto" (signed when a secret is available,
    #: unsigned too in debug mode; off with neither), "off", "signed", "open"
    overrides: str = "auto"
    #: secret(s) signing overrides; several for rotation (the first signs, all verify)
    override_secret: str | tuple[str, ...] | None = None
    #: the framework's own secret (Flask/Django SECRET_KEY), used when override_secret is unset
    framework_secret: str | None = None
    override_header: str = "X-Rampup-Override"
    override_cookie: str = "rampup_override"
    #: opt-in query parameter that sets or clears the override cookie (None: off)
    override_query_param: str | None = None
    #: response header listing overrides served/refused (debug, or an authorized tester)
    override_report_header: str = "X-Rampup-Overrides"
    #: also read overrides from incoming W3C baggage (``rampup.override``), under the same policy
    override_baggage: bool = False
    #: longest lifetime, in seconds, a signed override may have left (default 30 days)
    override_max_ttl: int = 30 * 24 * 3600
    #: the app runs in debug mode (adapters fill it from the framework when not given)
    debug: bool | None = None
    #: listeners told of each decision and request (telemetry is one)
    listeners: tuple[Listener, ...] = ()
    #: watch the flag file and reload it when it changes
    watch: bool = True
    #: the flag file's environment (``[environments.<name>]``); None reads ``$RAMPUP_ENV``
    environment: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "options") -> Settings:
        """Build from a mapping, rejecting unknown names with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"rampup: unknown {where} {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
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
        if self.cookie_samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError(
                f"rampup: cookie_samesite={self.cookie_samesite!r}; expected 'Lax', 'Strict' "
                "or 'None'"
            )
        if self.user is not None and not callable(self.user):
            raise ValueError(f"rampup: user={self.user!r} must be a callable given the request")


class RequestListener(Listener, Protocol):
    """**Protocol:** a listener that also wants to know when requests start and end."""

    def on_request_start(self, flags: RequestFlags) -> None:
        """A request began (no flag read yet)."""

    def on_request_end(
        self, flags: RequestFlags, status: int | None, error: BaseException | None
    ) -> None:
        """The response was sent (``status``) or the app raised ``error``."""

    # Optional: ``wants_end(flags) -> bool``, asked when the app has returned a response.
    # False: this request needs no on_request_end (e.g. nothing was recorded), so a WSGI
    # adapter need not follow the response body to its end. Absent: always True.
    # A listener may also drop itself from ``flags.listeners``: it then hears nothing more
    # of that request, and once every listener has left, the request's end is not reported.


_POLICY: Any = object()  # Runtime's default: the override reader the settings ask for


class Runtime:
    """What one middleware instance holds; long-lived and shared by all its requests."""

    __slots__ = (
        "_cookie_attrs",
        "_ends",
        "_overrides",
        "_starts",
        "_wants",
        "eager_headers",
        "forced_start",
        "listeners",
        "needs_end",
        "opener",
        "settings",
        "source",
        "timed",
    )

    def __init__(
        self,
        flags: Any,
        settings: Settings,
        request_overrides: Any = _POLICY,
        strict: bool = True,
    ) -> None:
        """``request_overrides``: the override reader; by default the one ``settings`` ask for
        (:func:`rampup.overrides.reader_for`), None for none. ``strict=False``: an invalid
        flag file serves no flags until it is fixed, instead of raising ConfigError."""
        if request_overrides is _POLICY:
            from .overrides import reader_for  # overrides builds on this module

            request_overrides = reader_for(settings)
        self.source: Source = as_source(
            flags, watch=settings.watch, strict=strict, env=settings.environment
        )
        self.settings = settings
        self._starts = tuple(lst for lst in settings.listeners if hasattr(lst, "on_request_start"))
        self._ends = tuple(lst for lst in settings.listeners if hasattr(lst, "on_request_end"))
        self._wants = tuple(getattr(lst, "wants_end", None) for lst in self._ends)
        attrs = [
            f"Path={settings.cookie_path}",
            f"Max-Age={settings.cookie_max_age}",
            "HttpOnly",
            f"SameSite={settings.cookie_samesite}",
        ]
        if settings.cookie_domain:
            attrs.append(f"Domain={settings.cookie_domain}")
        self._cookie_attrs = "; ".join(attrs)
        self.overrides = request_overrides
        #: every listener, in the order given
        self.listeners: tuple[Listener, ...] = settings.listeners
        #: an adapter must report the end of each request (status, error) to listeners
        self.needs_end = bool(self._ends)
        #: requests are timed (perf_counter at open) for listeners
        self.timed = bool(self._starts or self._ends)
        #: response headers may be due even when no flag was read (overrides in debug, or the
        #: query parameter that sets the override cookie)
        self.eager_headers = bool(getattr(request_overrides, "eager", False))
        #: what adapters call per request: :meth:`open`, or without start listeners the
        #: RequestFlags constructor itself (one Python call less on every request)
        self.opener: Callable[[Any, Any], RequestFlags] = (
            self.open if self._starts else partial(RequestFlags, self)
        )

    @property
    def overrides(self) -> Any:
        """Reads overrides from a request; see rampup.overrides (None: overrides off).

        Set it before serving: a request already open when it changes from None to a reader
        reads no overrides (adapters only change it before opening the first request)."""
        return self._overrides

    @overrides.setter
    def overrides(self, reader: Any) -> None:
        self._overrides = reader
        #: what a new request's Flags._forced starts as: None (read at the first flag read),
        #: or with no reader the "nothing forced" mapping, so no read takes the override path
        self.forced_start: Mapping[str, str] | None = _NO_FORCED if reader is None else None

    @classmethod
    def from_options(cls, flags: Any, options: Mapping[str, Any]) -> Runtime:
        """A runtime from an adapter's keyword options (validated by :class:`Settings`)."""
        return cls(flags, Settings.from_options(options))

    def learn_debug(self, debug: bool) -> None:
        """Set debug mode once the adapter learns it from the app (Starlette's ``app.debug``
        is only visible in the first request's scope). Only when it was not configured."""
        if self.settings.debug is not None:
            return
        from .overrides import reader_for

        self.settings = dataclasses.replace(self.settings, debug=debug)
        try:
            self.overrides = reader_for(self.settings)
        except ValueError as exc:  # a short secret, found out of debug mode at a request:
            log.error("%s; overrides are off", exc)  # refuse overrides, never the request
            self.overrides = None
        self.eager_headers = bool(getattr(self.overrides, "eager", False))

    def open(self, request: Any, view: Callable[[Any], RequestView] | RequestView) -> RequestFlags:
        """A Flags for one request over the current snapshot; evaluates nothing yet.

        ``view`` is the adapter's RequestView class (built from ``request`` only if a flag
        needs the request) or a ready view.
        """
        f = RequestFlags(self, request, view)
        for lst in self._starts:
            try:
                lst.on_request_start(f)
            except Exception:
                log.exception("rampup: listener %r failed at request start", lst)
        return f

    def has_headers(self, f: RequestFlags) -> bool:
        """Cheap test, per response: may :meth:`response_headers` return anything?"""
        return f.minted is not None or f.override_state is not None or self.eager_headers

    def response_headers(self, f: RequestFlags) -> list[tuple[str, str]]:
        """Headers to add to the response: the anonymous id cookie if one was minted and used,
        and the override report where it may be shown."""
        out: list[tuple[str, str]] = []
        try:
            if f.minted is not None and f.used_key:
                secure = self.settings.cookie_secure
                if secure is None:
                    secure = f.view.scheme == "https"
                cookie = f"{self.settings.cookie_name}={f.minted}; {self._cookie_attrs}"
                out.append(("Set-Cookie", cookie + "; Secure" if secure else cookie))
            reader = self._overrides
            # Only requests that read a flag have override state; the reader is `eager` when
            # it must look anyway (debug mode, or the query parameter that sets the cookie).
            if reader is not None and (f.override_state is not None or reader.eager):
                out.extend(reader.response_headers(f))
        except Exception:
            log.exception("rampup: computing response headers failed; sending none")
        return out

    def wants_end(self, f: RequestFlags) -> bool:
        """Does any listener need :meth:`finish` for this request (asked once the app returned
        a response)? Never raises: a failing answer counts as yes."""
        if not f.listeners:  # every listener left this request (see RequestListener)
            return False
        for want in self._wants:
            if want is None:
                return True
            try:
                if want(f):
                    return True
            except Exception:
                log.exception("rampup: listener's wants_end failed; following the request")
                return True
        return False

    def finish(self, f: RequestFlags, status: int | None, error: BaseException | None) -> None:
        """Tell listeners the request ended. Never raises."""
        if not f.listeners:
            return
        for lst in self._ends:
            try:
                lst.on_request_end(f, status, error)
            except Exception:
                log.exception("rampup: listener %r failed at request end", lst)


def _user_key(raw: str | None, where: str, name: str) -> str | None:
    """The user id sent in a header or cookie, or None; a value that is not an id (empty,
    over 256 characters, unprintable) is ignored, with the reason in the debug log."""
    key = clean_key(raw)
    if key is None and raw is not None:
        log.debug(
            "rampup: ignoring the %s %s (%d chars): not a user id (empty, over 256 characters "
            "or unprintable)",
            name,
            where,
            len(raw),
        )
    return key


class RequestFlags(Flags):
    """The :class:`~rampup.Flags` of one HTTP request: subject and overrides come from it."""

    __slots__ = (
        "_view",
        "minted",
        "override_state",
        "request",
        "runtime",
        "started",
        "state",
    )

    def __init__(
        self, runtime: Runtime, request: Any, view: Callable[[Any], RequestView] | RequestView
    ) -> None:
        # Not calling Flags.__init__: this runs on every request, so it sets only what it must.
        self.runtime = runtime
        self.snapshot = runtime.source.snapshot
        self.listeners = runtime.listeners
        #: the framework's request as the adapter passed it: the WSGI environ, the ASGI
        #: scope, or (Django) a weakref.ref to the HttpRequest, which holds this in .flags
        self.request = request
        self._view = view
        self._decisions = {}
        self._subject = None
        self._forced = runtime.forced_start
        #: a freshly minted anonymous id, to be set as a cookie if a split used it
        self.minted: str | None = None
        #: what rampup.overrides made of the overrides this request sent (None: none sent,
        #: or not read yet)
        self.override_state: Any = None
        #: per-request scratch space for listeners (e.g. the span telemetry captured)
        self.state: dict[str, Any] | None = None
        self.started = time.perf_counter() if runtime.timed else 0.0

    @property
    def view(self) -> RequestView:
        """The read-only view of the request, built on first use."""
        v = self._view
        if isinstance(v, type):
            v = self._view = v(self.request)
        return v  # type: ignore[return-value]

    @property
    def used_key(self) -> bool:
        """True when a decision depended on the subject key (a split), so the anonymous id
        must persist for the visitor to stay in their bucket."""
        return any(d.reason is Reason.SPLIT for d in self._decisions.values())

    def identify(self, key: Any, attributes: Mapping[str, Any] | None = None) -> bool:
        """Set this request's subject explicitly (e.g. from a FastAPI dependency or after
        login). Ignored, with a warning, once a flag was decided, so that one request never
        sees two variants of a flag. Returns True if applied."""
        if self._decisions:
            log.warning("rampup: identify() after flags were read in this request; ignored")
            return False
        view = self.view
        self._subject = Subject(
            clean_key(key),
            RequestAttributes(view, attributes) if attributes else attributes_of(view),
        )
        if self._subject.key is None:
            self._subject = None
            return False
        self.minted = None  # an anonymous id minted before (e.g. by reading .subject) is moot
        return True

    def _resolve(self) -> Subject:
        # Runs once per request that reads a subject-dependent flag: kept flat.
        try:
            settings = self.runtime.settings
            view = self.view
            key = None
            if settings.user_header:
                raw = view.header(settings.user_header)
                if raw is not None:
                    key = _user_key(raw, "header", settings.user_header)
            if key is None and settings.user_cookie:
                raw = view.cookie(settings.user_cookie)
                if raw is not None:
                    key = _user_key(raw, "cookie", settings.user_cookie)
            if key is None and settings.user is not None:
                s = self._from_callback(settings.user, view)
            else:
                s = Subject(
                    key if key is not None else self._anonymous_id(view), attributes_of(view)
                )
        except Exception:
            log.exception("rampup: resolving the request's subject failed; using an anonymous id")
            s = Subject(self._anonymous_id(self.view), attributes_of(self.view))
        self._subject = s
        return s

    def _from_callback(self, user: Callable[[Any], Any], view: RequestView) -> Subject:
        request = self.request
        if type(request) is ReferenceType:  # held weakly by the adapter (Django)
            request = request()
        s = subject_from(user(request), view)
        if s is None:
            return Subject(self._anonymous_id(view), attributes_of(view))
        return s if s.key is not None else Subject(self._anonymous_id(view), s.attributes)

    def _anonymous_id(self, view: RequestView) -> str:
        existing = view.cookie(self.runtime.settings.cookie_name)
        return existing if valid_anonymous_id(existing) else self._mint(existing)

    def _mint(self, existing: str | None) -> str:
        """A new anonymous id, to be set as a cookie; ``existing`` is the id cookie that was
        sent, if any (rare: the reason it is replaced goes to the debug log)."""
        if existing is not None:
            log.debug(
                "rampup: ignoring the %s cookie (%d chars): not an id rampup mints "
                "(32 lowercase hex digits); minting a new one",
                self.runtime.settings.cookie_name,
                len(existing),
            )
        self.minted = mint_anonymous_id()
        return self.minted

    def _read_forced(self) -> Mapping[str, str]:
        """Read this request's overrides (once, at the first flag read); never raises."""
        forced: Mapping[str, str] = _NO_FORCED
        reader = self.runtime._overrides  # the slot: this runs per request
        if reader is not None:
            try:
                state = reader.read(self)
                if state.outcomes or state.set_cookie is not None:  # the request sent some
                    self.override_state = state
                # the shared empty mapping when nothing is forced: _decide's fast path
                forced = state.served or _NO_FORCED
            except Exception:
                log.exception("rampup: reading overrides failed; ignoring them")
        self._forced = forced
        return forced

    def read_overrides(self) -> Any:
        """This request's override state (read now if no flag was read yet), or None when it
        sent no overrides."""
        if self._forced is None:
            self._read_forced()
        return self.override_state
