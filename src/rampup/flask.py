"""Flask extension: ``Rampup(app, flags="flags.toml")``, then ``g.flags`` in views.

Built on :class:`rampup.wsgi.RampupMiddleware`, which wraps ``app.wsgi_app`` and keeps the
flags bound while a streamed body runs. This module only translates: options come from
keyword arguments and ``app.config["RAMPUP_<NAME>"]``; the request's Flags are reachable as
``g.flags`` (set by a ``before_request`` function, so the app's ``g`` class is its own), as
``flags`` in templates and as :data:`rampup.flags`; :func:`flag_required` guards a view.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import MissingDependency

try:
    from flask import Flask, abort, g, has_request_context, request
except ImportError as exc:  # tested by hiding flask from sys.modules
    raise MissingDependency('rampup.flask needs Flask: pip install "rampup[flask]"') from exc

from .context import Flags, current_or_none, register_fallback
from .errors import UnboundFlagsError
from .lifecycle import Runtime
from .options import NAMES, Options, OptionsDict, unknown_names
from .sources import Source
from .wsgi import ENVIRON_KEY, RampupMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Rampup", "RampupState", "flag_required"]

log = logging.getLogger("rampup")

F = TypeVar("F", bound=Callable[..., Any])

#: ``app.config`` keys this extension reads: ``RAMPUP_FLAGS`` plus one per option.
CONFIG_PREFIX = "RAMPUP_"
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
    def options(self) -> Options:
        """The options in effect, after merging keyword arguments and ``RAMPUP_*`` config."""
        return self.runtime.options


class Rampup:
    """Feature flags for a Flask app, in one line::

        Rampup(app, flags="flags.toml", user_header="X-User-Id")

    or, with an app factory, ``rampup = Rampup()`` then ``rampup.init_app(app)``. Options are
    the fields of :class:`rampup.Options`; each may also be set as ``app.config["RAMPUP_<NAME>"]``
    (``RAMPUP_FLAGS``, ``RAMPUP_USER_HEADER``, ...). Keyword arguments win over config. Debug
    mode is the app's at its first request (so ``app.run(debug=True)`` counts); ``SECRET_KEY``
    is read by ``init_app``.

    The instance keeps no reference to an app; each app's state lives in
    ``app.extensions["rampup"]`` (a :class:`RampupState`).
    """

    __slots__ = ("_flags", "_options")

    def __init__(
        self, app: Flask | None = None, flags: Any = None, **options: Unpack[OptionsDict]
    ) -> None:
        Options.from_options(options)  # a misspelt option fails here, not at init_app
        self._flags = flags
        self._options: dict[str, Any] = dict(options)
        if app is not None:
            self.init_app(app)

    def init_app(
        self, app: Flask, flags: Any = None, **options: Unpack[OptionsDict]
    ) -> RampupState:
        """Wrap ``app.wsgi_app`` and expose the request's flags on ``g`` and in templates."""
        if "rampup" in app.extensions:
            raise RuntimeError(
                f"rampup: Rampup is already set up on app {app.name!r}; call init_app once "
                "per app (the state is in app.extensions['rampup'])"
            )
        merged = {**_config_options(app.config), **self._options, **options}
        flags = flags if flags is not None else self._flags
        flags = merged.pop("flags", DEFAULT_FLAGS) if flags is None else flags
        merged.pop("flags", None)
        if "framework_secret" not in merged:
            merged["framework_secret"] = _secret(app.config.get("SECRET_KEY"))
        if merged.get("user") is not None:
            merged["user"] = _given_flask_request(merged["user"])
        middleware = RampupMiddleware(app.wsgi_app, flags, **merged)
        if middleware.runtime.options.debug is None:
            middleware.runtime.debug_from = lambda _environ: app.debug
        register_fallback(_environ_flags)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        state = app.extensions["rampup"] = RampupState(middleware.runtime, middleware)
        # First, so that an app's own before_request that sets g.flags wins.
        app.before_request_funcs.setdefault(None, []).insert(0, _set_g_flags)
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
    known = {CONFIG_PREFIX + n.upper(): n for n in ("flags", *NAMES)}
    given = [k for k in config if k.startswith(CONFIG_PREFIX)]
    message = unknown_names(given, known, "config key")
    if message:
        raise ValueError(message)
    # Values from JSON or env (app.config.from_prefixed_env) arrive as lists.
    return {known[k]: tuple(v) if isinstance(v := config[k], list) else v for k in given}


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
            log.warning(
                "rampup: the user callback needs a Flask request context; "
                "treating the subject as anonymous (use stream_with_context)"
            )
            return None
        return user(request._get_current_object())  # type: ignore[attr-defined]

    return call


def _set_g_flags() -> None:
    f = current_or_none()
    if f is not None:
        g.flags = f


def _environ_flags() -> Flags | None:
    """The Flags in the environ of Flask's current request context, if any: a request
    context copied into another thread (copy_current_request_context) does not carry the
    ContextVar; the environ does."""
    if has_request_context():
        return request.environ.get(ENVIRON_KEY)
    return None


def _request_flags() -> Flags | None:
    """The current request's Flags, or None outside a request served through rampup."""
    f = current_or_none()
    return f if f is not None else _environ_flags()


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
