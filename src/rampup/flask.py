"""Flask extension: ``Rampup(app, flags="flags.toml")``, then ``g.flags`` in views.

Built on :class:`rampup.wsgi.RampupMiddleware`, which wraps ``app.wsgi_app``; a streamed body
reaches the flags through Flask's request context, so it needs ``stream_with_context`` (as
``g`` and ``request`` do). This module only translates: options come from
keyword arguments and ``app.config["RAMPUP_<NAME>"]``; the request's Flags are reachable as
``g.flags``, as ``flags`` in templates and as :data:`rampup.flags`; :func:`flag_required`
guards a view. Nothing here runs per request except what a view asks for.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import MissingDependency

try:
    from flask import Flask, abort, has_request_context, request
except ImportError as exc:  # tested by hiding flask from sys.modules
    raise MissingDependency('rampup.flask needs Flask: pip install "rampup[flask]"') from exc

from . import client
from ._request import Runtime, Settings
from .context import Flags, _current, register_fallback
from .errors import UnboundFlagsError
from .sources import Source
from .wsgi import ENVIRON_KEY, RampupMiddleware

__all__ = ["Rampup", "RampupState", "flag_required"]

log = logging.getLogger("rampup")

F = TypeVar("F", bound=Callable[..., Any])

#: ``app.config`` keys this extension reads: ``RAMPUP_FLAGS`` plus one per Settings field.
CONFIG_PREFIX = "RAMPUP_"
_OPTION_NAMES = frozenset({"flags"} | {f.name for f in dataclasses.fields(Settings)})
DEFAULT_FLAGS = "flags.toml"

_NO_FLAGS = (
    "no rampup flags for this request: call Rampup(app) or ext.init_app(app) on the app "
    "that serves it (outside a request, build rampup.Flags(snapshot, subject) yourself)"
)


@dataclass(frozen=True, slots=True)
class RampupState:
    """What ``init_app`` stores in ``app.extensions["rampup"]`` for one app."""

    runtime: Runtime
    middleware: RampupMiddleware

    @property
    def source(self) -> Source:
        """The flag source (a FileSource for a path: ``poll()``, ``reload()``, ``last_error``)."""
        return self.runtime.source

    @property
    def settings(self) -> Settings:
        """The options in effect, after merging keyword arguments and ``RAMPUP_*`` config."""
        return self.runtime.settings


class Rampup:
    """Feature flags for a Flask app, in one line::

        Rampup(app, flags="flags.toml", user_header="X-User-Id")

    or, with an app factory, ``rampup = Rampup()`` then ``rampup.init_app(app)``. Options are
    the fields of :class:`rampup._request.Settings`; each may also be set as
    ``app.config["RAMPUP_<NAME>"]`` (``RAMPUP_FLAGS``, ``RAMPUP_USER_HEADER``, ...). Keyword
    arguments win over config. A relative ``flags`` path is relative to the working directory.

    The instance keeps no reference to an app, so one instance can serve several apps; each
    app's state lives in ``app.extensions["rampup"]`` (a :class:`RampupState`).
    """

    __slots__ = ("_flags", "_options")

    def __init__(self, app: Flask | None = None, flags: Any = None, **options: Any) -> None:
        self._flags = flags
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, flags: Any = None, **options: Any) -> RampupState:
        """Wrap ``app.wsgi_app`` and expose the request's flags on ``g`` and in templates."""
        if "rampup" in app.extensions:
            raise RuntimeError(
                f"rampup: Rampup is already set up on app {app.name!r}; call init_app once "
                "per app (the state is in app.extensions['rampup'])"
            )
        merged = {**_config_options(app.config), **self._options, **options}
        if flags is None:
            flags = self._flags
        if flags is None:
            flags = merged.get("flags", DEFAULT_FLAGS)
        merged.pop("flags", None)
        # Both are read once, here: set DEBUG and SECRET_KEY before calling init_app.
        merged.setdefault("debug", app.debug)
        if "framework_secret" not in merged:
            merged["framework_secret"] = _secret(app.config.get("SECRET_KEY"))
        if merged.get("user") is not None:
            merged["user"] = _given_flask_request(merged["user"])

        settings = Settings.from_options(merged, where="Rampup() options")
        runtime = Runtime(flags, settings)
        # Flask streams with stream_with_context, which keeps its request context; the
        # fallback below finds the Flags there, so no per-request body wrapper is needed.
        middleware = RampupMiddleware(app.wsgi_app, runtime=runtime, stream_context=False)
        register_fallback(_environ_flags)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        state = RampupState(runtime, middleware)
        app.extensions["rampup"] = state

        # `g.flags` is looked up lazily (see _with_flags) rather than set in a before_request
        # hook, so requests that never touch it pay nothing.
        app.app_ctx_globals_class = _with_flags(app.app_ctx_globals_class)
        # {{ rampup_client_flags() }}: the client = true flags as a JSON <script> element
        app.jinja_env.globals.setdefault("rampup_client_flags", client.jinja_script_tag)
        existing = app.jinja_env.globals.setdefault("flags", _TEMPLATE_FLAGS)
        if existing is not _TEMPLATE_FLAGS:
            log.warning(
                "rampup: the Jinja global 'flags' is already taken; templates of %r "
                "will not see rampup's flags",
                app.name,
            )
        return state


def _config_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """``RAMPUP_*`` config keys as option names; an unknown key is an error that suggests."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in config.items():
        if not key.startswith(CONFIG_PREFIX):
            continue
        name = key[len(CONFIG_PREFIX) :].lower()
        if name in _OPTION_NAMES and key == CONFIG_PREFIX + name.upper():
            # Values from JSON or env (app.config.from_prefixed_env) arrive as lists.
            out[name] = tuple(value) if isinstance(value, list) else value
        else:
            unknown.append(key)
    if unknown:
        known = sorted(CONFIG_PREFIX + n.upper() for n in _OPTION_NAMES)
        hints = []
        for key in sorted(unknown):
            close = difflib.get_close_matches(key.upper(), known, n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ValueError(
            f"rampup: unknown config key{'s' if len(hints) > 1 else ''} {', '.join(hints)}; "
            f"known: {', '.join(known)}"
        )
    return out


def _secret(value: Any) -> str | None:
    if not value:
        return None
    # Flask allows bytes (e.g. os.urandom); latin-1 maps every byte to one character.
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _given_flask_request(user: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Adapt the user callback: the WSGI core hands it the environ; Flask users expect
    ``flask.request``. It runs lazily, at the first flag read, inside the request context."""

    @functools.wraps(user)
    def call(_environ: Any) -> Any:
        if not has_request_context():
            # e.g. a flag first read in a streamed body without stream_with_context
            log.warning(
                "rampup: the user callback needs a Flask request context; "
                "treating the subject as anonymous (use stream_with_context)"
            )
            return None
        return user(request._get_current_object())  # type: ignore[attr-defined]

    return call


def _environ_flags() -> Flags | None:
    """The Flags in the environ of Flask's current request context, if any."""
    if has_request_context():
        return request.environ.get(ENVIRON_KEY)
    return None


def _request_flags() -> Flags | None:
    """The current request's Flags, or None outside a request served through rampup."""
    f = _current.get(None)
    if f is None and has_request_context():
        # A request context copied into another thread (copy_current_request_context)
        # does not carry the ContextVar; the environ does.
        f = request.environ.get(ENVIRON_KEY)
    return f


def _with_flags(base: type[Any]) -> type[Any]:
    """A subclass of the app's ``g`` class on which ``g.flags`` is the request's Flags.

    Flask documents ``app_ctx_globals_class`` for lazy per-request attributes. ``__getattr__``
    runs only when ``g`` has no real ``flags`` attribute, so an app's own ``g.flags`` wins.
    """
    if getattr(base, "_rampup_flags", False):
        return base

    class RampupGlobals(base):  # type: ignore[misc]
        _rampup_flags = True

        def __getattr__(self, name: str) -> Any:
            if name == "flags":
                f = _request_flags()
                if f is not None:
                    return f
                raise AttributeError(f"g.flags: {_NO_FLAGS}")
            parent = getattr(base, "__getattr__", None)
            if parent is None:
                raise AttributeError(name)
            return parent(self, name)

    RampupGlobals.__qualname__ = RampupGlobals.__name__ = f"Rampup{base.__name__}"
    return RampupGlobals


class _TemplateFlags:
    """``flags`` in Jinja templates: ``{% if flags.enabled("new-checkout") %}``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # probes like __html__ must not depend on a request
            raise AttributeError(name)
        f = _request_flags()
        if f is None:
            raise UnboundFlagsError(f"flags in a template: {_NO_FLAGS}")
        return getattr(f, name)

    def __repr__(self) -> str:
        return f"<rampup template flags -> {_request_flags()!r}>"


_TEMPLATE_FLAGS = _TemplateFlags()


def flag_required(key: str, variant: str | None = None) -> Callable[[F], F]:
    """Serve the view only when ``key`` is enabled (or serves ``variant``); 404 otherwise.

    ::

        @app.get("/admin")
        @flag_required("admin-panel")
        def admin(): ...
    """

    def served() -> bool:
        f = _request_flags()
        if f is None:
            log.warning("rampup: flag_required(%r) outside a rampup request; answering 404", key)
            return False
        return f.enabled(key) if variant is None else f.variant(key) == variant

    def decorate(view: F) -> F:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                if not served():
                    abort(404)
                return await view(*args, **kwargs)

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not served():
                abort(404)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
