"""One request, start to finish, for every adapter: open, bind, response headers, finish.

Adapters translate their framework's request into a :class:`~rampup.subject.RequestView` and
call, per request:

- :meth:`Runtime.open` -> the request's :class:`RequestFlags` (never raises: when rampup
  itself fails, the request gets a Flags over :data:`FALLBACK`, where every flag is off and
  ``identify()`` still works; the failure is logged once per middleware);
- :func:`bind` / :func:`unbind` around the app (the one ContextVar policy);
- :meth:`Runtime.headers` when the response starts -> :class:`ResponseHeaders` or None (the
  one "are headers due?" test);
- :meth:`Runtime.finish` when the response is done (status, error) -> listeners.

Adapters decide nothing. Nothing here raises into the host app.

Request layer: imports the core and :mod:`rampup.overrides`, never an adapter or telemetry.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import ReferenceType

from .context import NOTHING_FORCED, Flags, Listener, bind
from .engine import Snapshot
from .model import Reason, Subject
from .options import Options
from .overrides import OverrideReader, OverrideState, reader_for
from .sources import Source, as_source
from .subject import (
    Cookie,
    RequestAttributes,
    RequestView,
    clean_key,
    mint_anonymous_id,
    subject_from,
    valid_anonymous_id,
)

__all__ = [
    "FALLBACK",
    "Cookie",
    "RequestFlags",
    "RequestListener",
    "ResponseHeaders",
    "Runtime",
    "bind",
    "unbind",
]

log = logging.getLogger("rampup")

#: What a request serves when rampup itself fails (a custom source raising, a bug): no flags,
#: so every flag reads as unknown (off) and the app still gets its own response, never a 500.
FALLBACK = Snapshot.serving_nothing(
    "rampup could not open the request (see the error logged)", "<rampup unavailable>"
)


def unbind(token: Token[Flags]) -> None:
    """Undo :func:`bind` at the end of a request. A token from another context (a server
    quirk) is logged, never raised into the app."""
    try:
        token.var.reset(token)
    except ValueError:
        log.warning("rampup: a request's flags were unbound in another context than bound")


@dataclass(frozen=True, slots=True)
class ResponseHeaders:
    """What rampup adds to one response: cookies (the anonymous id, the override cookie) and
    plain headers (the overrides report)."""

    cookies: tuple[Cookie, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        """As raw ``(name, value)`` header pairs (WSGI/ASGI)."""
        return [("Set-Cookie", c.header()) for c in self.cookies] + list(self.headers)


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
    # Optional: ``hears_decisions = False``: never told of decisions, only of each request's
    # start and end, which are then always reported (the outcome book's recorder).
    # Optional: ``ends_need_reads = True``: the end of a request that read no flag is moot to
    # it (nothing was recorded); when every listener says so, such a request's end is not
    # reported at all, and its adapter does no end-of-request work.
    # A listener may also drop itself from ``flags.listeners``: it then hears nothing more
    # of that request, and once every listener has left, the request's end is not reported.


class Runtime:
    """What one middleware instance holds: the flag source, the options, the override reader
    and the listeners; long-lived and shared by all its requests.

    ``strict=False``: an invalid flag file serves no flags until it is fixed, instead of
    raising ConfigError. ``debug_from``: when the options leave ``debug`` unset, asked once, at
    the first request (given the framework's request), for the app's debug mode (Starlette's
    ``app.debug`` is only visible in a request; Flask's may be set by ``app.run(debug=True)``
    after ``Rampup(app)``); without it, not in debug mode. The override policy (which depends
    on debug mode) is then decided, and warned about, once, at that first request.
    """

    __slots__ = (
        "_end_always",
        "_end_info",
        "_ends",
        "_ends_need_reads",
        "_failed",
        "_starts",
        "all_listeners",
        "debug_from",
        "eager",
        "listeners",
        "needs_end",
        "options",
        "overrides",
        "source",
        "timed",
    )

    def __init__(
        self,
        flags: Any,
        options: Options,
        *,
        strict: bool = True,
        debug_from: Callable[[Any], bool | None] | None = None,
        listeners: Iterable[Listener] | None = None,
    ) -> None:
        """``listeners``: every listener of this middleware (default: ``options.listeners``);
        adapters pass what the ``telemetry`` option adds too (the telemetry layer decides it,
        above this one)."""
        self.source: Source = as_source(
            flags, watch=options.watch, strict=strict, env=options.environment
        )
        self.options = options
        listeners = tuple(options.listeners if listeners is None else listeners)
        #: every listener, in order
        self.all_listeners: tuple[Listener, ...] = listeners
        #: those told of each decision (what a request's Flags calls); one that declares
        #: ``hears_decisions = False`` (the outcome book's recorder) only hears requests end
        self.listeners = tuple(x for x in listeners if getattr(x, "hears_decisions", True))
        self._starts = tuple(lst for lst in listeners if hasattr(lst, "on_request_start"))
        self._ends = tuple(lst for lst in listeners if hasattr(lst, "on_request_end"))
        #: per end listener: (it, its wants_end or None, told of every end even after
        #: leaving the request: it hears no decisions, so it never leaves)
        self._end_info = tuple(
            (lst, getattr(lst, "wants_end", None), not getattr(lst, "hears_decisions", True))
            for lst in self._ends
        )
        #: the end of every request is reported, even once every decision listener left
        self._end_always = any(not getattr(x, "hears_decisions", True) for x in self._ends)
        #: no listener cares how a request that read no flag ended (the usual setup: the
        #: outcome recorder and telemetry), so requests reading none skip the end dispatch
        self._ends_need_reads = all(getattr(x, "ends_need_reads", False) for x in self._ends)
        #: an adapter must report the end of each request (status, error) to listeners
        self.needs_end = bool(self._ends)
        #: requests are timed (perf_counter at open) for listeners
        self.timed = bool(self._starts or self._ends)
        self._failed = False
        self.overrides: OverrideReader | None = None
        self.eager = False
        #: asked once, at the first request, for the app's debug mode (None: known already)
        self.debug_from: Callable[[Any], bool | None] | None = None
        if options.debug is None:
            reader_for(dataclasses.replace(options, debug=True))  # a bad policy fails now
            self.debug_from = debug_from or _not_debug
        else:
            self._set_reader(options)

    def _set_reader(self, options: Options, at_request: bool = False) -> None:
        """Build the override reader for ``options`` (debug mode known)."""
        self.options = options
        try:
            #: reads overrides from a request (None: overrides off)
            self.overrides = reader_for(options)
        except ValueError as exc:
            if not at_request:  # at start-up a bad secret must fail the deploy
                raise
            # found out of debug mode at the first request (a short secret): refuse the
            # overrides, never the request
            log.error("%s; overrides are off", exc)
            self.overrides = None
        #: headers may be due even when no flag was read (debug mode shows the overrides
        #: report; the query parameter sets the override cookie)
        self.eager = self.overrides is not None and self.overrides.eager

    def open(self, request: Any, view: Callable[[Any], RequestView] | RequestView) -> RequestFlags:
        """The Flags of one request over the current snapshot; evaluates nothing yet.

        ``view`` is the adapter's RequestView class (built from ``request`` only if a flag
        needs the request) or a ready view. Never raises: see :data:`FALLBACK`.
        """
        try:
            if self.debug_from is not None:
                learn, self.debug_from = self.debug_from, None
                debug = bool(learn(request))
                if debug is not self.options.debug:  # unset until now, or the app changed it
                    self._set_reader(
                        dataclasses.replace(self.options, debug=debug), at_request=True
                    )
            f = RequestFlags(self, request, view)
        except Exception:
            return self._fallback(request, view)
        for lst in self._starts:
            try:
                lst.on_request_start(f)
            except Exception:
                log.exception("rampup: listener %r failed at request start", lst)
        return f

    def _fallback(
        self, request: Any, view: Callable[[Any], RequestView] | RequestView
    ) -> RequestFlags:
        if not self._failed:  # once: a broken source would otherwise log on every request
            self._failed = True
            log.exception("rampup: could not open the request; every flag reads as off")
        else:
            log.debug("rampup: could not open the request; every flag reads as off", exc_info=True)
        return RequestFlags(_FALLBACK_RUNTIME, request, view)

    def headers(self, f: RequestFlags) -> ResponseHeaders | None:
        """What to add to the response, or None (the common case, tested first: no id was
        minted, no override sent, nothing eager). Never raises."""
        if f.minted is None and f.override_state is None and not self.eager:
            return None
        try:
            cookies: list[Cookie] = []
            headers: tuple[tuple[str, str], ...] = ()
            if f.minted is not None and f.used_key:
                o = self.options
                secure = o.cookie_secure
                cookies.append(
                    Cookie(
                        o.cookie_name,
                        f.minted,
                        o.cookie_path,
                        o.cookie_max_age,
                        o.cookie_domain,
                        f.view.scheme == "https" if secure is None else secure,
                        True,
                        o.cookie_samesite,
                    )
                )
            reader = self.overrides
            if reader is not None and (f.override_state is not None or reader.eager):
                state = f.read_overrides()
                if state is not None:
                    if state.set_cookie is not None:
                        cookies.append(state.set_cookie)
                    headers = reader.report(state)
        except Exception:
            log.exception("rampup: computing response headers failed; sending none")
            return None
        if not cookies and not headers:
            return None
        return ResponseHeaders(tuple(cookies), headers)

    def wants_end(self, f: RequestFlags) -> bool:
        """Does any listener need :meth:`finish` for this request (asked once the app returned
        a response)? Never raises: a failing answer counts as yes."""
        if not self._ends or (not f.listeners and not self._end_always):
            return False  # none, or every listener left this request
        if self._ends_need_reads and not f._decisions:  # (a RequestFlags: ours to read)
            return False  # no flag read: nothing any listener recorded
        listening = f.listeners
        for lst, want, always in self._end_info:
            if not always and lst not in listening:
                continue  # it left this request: it hears nothing more of it
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
        if (not f.listeners and not self._end_always) or (
            self._ends_need_reads and not f._decisions
        ):
            return
        listening = f.listeners
        for lst, _want, always in self._end_info:
            if not always and lst not in listening:
                continue  # it left this request: it hears nothing more of it
            try:
                lst.on_request_end(f, status, error)
            except Exception:
                log.exception("rampup: listener %r failed at request end", lst)


def _not_debug(_request: Any) -> bool:
    """Frameworks that do not tell: not in debug mode."""
    return False


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

    __slots__ = ("_view", "minted", "override_state", "request", "runtime", "started", "state")

    def __init__(
        self, runtime: Runtime, request: Any, view: Callable[[Any], RequestView] | RequestView
    ) -> None:
        Flags.__init__(self, runtime.source.snapshot, None, runtime.listeners)
        self.runtime = runtime
        #: the framework's request as the adapter passed it: the WSGI environ, the ASGI
        #: scope, or (Django) a weakref.ref to the HttpRequest, which holds this in .flags
        self.request = request
        self._view = view
        self._subject = None  # resolved from the request at the first read that needs it
        if runtime.overrides is not None:
            self._forced = None  # read from the request at the first flag read
        #: a freshly minted anonymous id, to be set as a cookie if a split used it
        self.minted: str | None = None
        #: what rampup.overrides made of the overrides this request sent (None: none sent,
        #: or not read yet)
        self.override_state: OverrideState | None = None
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
        key = clean_key(key)
        if key is None:
            return False
        self._subject = Subject(key, RequestAttributes(self.view, attributes))
        self.minted = None  # an anonymous id minted before (e.g. by reading .subject) is moot
        return True

    def _resolve(self) -> Subject:
        # Runs once per request that reads a subject-dependent flag.
        try:
            options = self.runtime.options
            view = self.view
            key = None
            if options.user_header:
                raw = view.header(options.user_header)
                if raw is not None:
                    key = _user_key(raw, "header", options.user_header)
            if key is None and options.user_cookie:
                raw = view.cookie(options.user_cookie)
                if raw is not None:
                    key = _user_key(raw, "cookie", options.user_cookie)
            if key is None and options.user is not None:
                s = self._from_callback(options.user, view)
            else:
                s = Subject(
                    key if key is not None else self._anonymous_id(view), RequestAttributes(view)
                )
        except Exception:
            log.exception("rampup: resolving the request's subject failed; using an anonymous id")
            s = Subject(self._anonymous_id(self.view), RequestAttributes(self.view))
        self._subject = s
        return s

    def _from_callback(self, user: Callable[[Any], Any], view: RequestView) -> Subject:
        request = self.request
        if type(request) is ReferenceType:  # held weakly by the adapter (Django)
            request = request()
        s = subject_from(user(request), view)
        if s is None:
            return Subject(self._anonymous_id(view), RequestAttributes(view))
        return s if s.key is not None else Subject(self._anonymous_id(view), s.attributes)

    def _anonymous_id(self, view: RequestView) -> str:
        existing = view.cookie(self.runtime.options.cookie_name)
        return existing if valid_anonymous_id(existing) else self._mint(existing)

    def _mint(self, existing: str | None) -> str:
        """A new anonymous id, to be set as a cookie; ``existing`` is the id cookie that was
        sent, if any (rare: the reason it is replaced goes to the debug log)."""
        if existing is not None:
            log.debug(
                "rampup: ignoring the %s cookie (%d chars): not an id rampup mints "
                "(32 lowercase hex digits); minting a new one",
                self.runtime.options.cookie_name,
                len(existing),
            )
        self.minted = mint_anonymous_id()
        return self.minted

    def _read_forced(self) -> Mapping[str, str]:
        """Read this request's overrides (once, at the first flag read); never raises."""
        forced: Mapping[str, str] = NOTHING_FORCED
        reader = self.runtime.overrides
        if reader is not None:
            try:
                state = reader.read(self)
                if state.outcomes or state.set_cookie is not None:  # the request sent some
                    self.override_state = state
                # the shared empty mapping when nothing is forced: Flags' fast path
                forced = state.served or NOTHING_FORCED
            except Exception:
                log.exception("rampup: reading overrides failed; ignoring them")
        self._forced = forced
        return forced

    def read_overrides(self) -> OverrideState | None:
        """This request's override state (read now if no flag was read yet), or None when it
        sent no overrides."""
        if self._forced is None:
            self._read_forced()
        return self.override_state


#: The runtime of :data:`FALLBACK` requests: no flags, no overrides, no listeners.
_FALLBACK_RUNTIME = Runtime(FALLBACK, Options(overrides="off", debug=False, watch=False))
