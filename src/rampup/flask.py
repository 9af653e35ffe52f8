"""Flask extension: ``Rampup(app, flags="flags.toml")``, then ``g.flags`` in views.

Built on :class:`rampup.wsgi.RampupMiddleware`, which wraps ``app.wsgi_app`` and keeps the
flags bound while a streamed body runs. This module only translates: options come from
keyword arguments and ``app.config["RAMPUP_<NAME>"]``; the request's Flags are reachable as
``g.flags`` (set by a ``before_request`` function, so the app's ``g`` class is its own), as
``flags`` in templates and as :data:`rampup.flags`; :func:`flag_required` guards a view.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import MissingDependency

try:
    from flask import Flask, g, has_request_context, request
except ImportError as exc:  # tested by hiding flask from sys.modules
    raise MissingDependency('rampup.flask needs Flask: pip install "rampup[flask]"') from exc

from . import client
from .context import current_or_none, register_fallback
from .flask_views import TEMPLATE_FLAGS, environ_flags, flag_required
from .lifecycle import Runtime
from .options import NAMES, Options, OptionsDict, unknown_names
from .sources import Source
from .wsgi import RampupMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Rampup", "RampupState", "flag_required"]

log = logging.getLogger("rampup")

#: ``app.config`` keys this extension reads: ``RAMPUP_FLAGS`` plus one per option.
CONFIG_PREFIX = "RAMPUP_"
DEFAULT_FLAGS = "flags.toml"


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
        # Flask allows a bytes SECRET_KEY (e.g. os.urandom); latin-1 maps a byte to a character.
        secret = app.config.get("SECRET_KEY") or None
        merged.setdefault(
            "framework_secret", secret.decode("latin-1") if isinstance(secret, bytes) else secret
        )
        if merged.get("user") is not None:
            merged["user"] = _given_flask_request(merged["user"])
        # `flask run` loads the app in the reloader's parent process too, which serves no
        # request: watching the file there too would log every reload error twice. Under the
        # CLI, watching starts at the first request, so only the serving process watches.
        watch = merged.get("watch", True)
        lazy = watch and _in_flask_run()
        merged["watch"] = watch and not lazy
        middleware = RampupMiddleware(app.wsgi_app, flags, **merged)
        runtime, debug = middleware.runtime, merged.get("debug")

        start = getattr(runtime.source, "start", None) if lazy else None

        def first_request(_environ: Any) -> bool:
            if start is not None:
                start()
            return bool(app.debug if debug is None else debug)

        runtime.debug_from = first_request
        register_fallback(environ_flags)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        state = app.extensions["rampup"] = RampupState(middleware.runtime, middleware)
        # First, so that an app's own before_request that sets g.flags wins.
        app.before_request_funcs.setdefault(None, []).insert(0, _set_g_flags)
        # {{ rampup_client_flags() }}: the client = true flags as a JSON <script> element
        app.jinja_env.globals.setdefault("rampup_client_flags", client.jinja_script_tag)
        existing = app.jinja_env.globals.setdefault("flags", TEMPLATE_FLAGS)
        if existing is not TEMPLATE_FLAGS:
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


def _in_flask_run() -> bool:
    """True in a process `flask run` started that is not the reloader's serving child."""
    cli, child = os.environ.get("FLASK_RUN_FROM_CLI"), os.environ.get("WERKZEUG_RUN_MAIN")
    return cli == "true" and child != "true"


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
