"""Mount the dashboard in a Flask app, in one line::

    from rampup.dashboard.flask import mount
    mount(app, "/_rampup", flags=source, authorize=lambda request: ...)

The dashboard is served as a WSGI app beside Flask's (like werkzeug's ``DispatcherMiddleware``),
so it needs no blueprint and no template folder. The ``authorize`` callback runs inside Flask's
request context, so it may use ``flask.request``, ``flask.session`` or Flask-Login's
``current_user``::

    mount(app, "/_rampup", flags=source,
          authorize=lambda r: current_user.is_authenticated and current_user.is_admin
          and current_user.get_id())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import flask
except ImportError as exc:  # pragma: no cover - the flask extra is installed in tests
    from ..errors import MissingDependency

    raise MissingDependency(
        'rampup.dashboard.flask needs Flask: pip install "rampup[flask]"'
    ) from exc

from .app import Dashboard
from .http import Request, mount_wsgi

__all__ = ["mount"]


def _in_request_context(app: flask.Flask, authorize: Callable[[Request], Any]) -> Any:
    def check(request: Request) -> Any:
        with app.request_context(dict(request.environ or {})):
            return authorize(request)

    return check


def mount(app: flask.Flask, prefix: str = "/_rampup", *, flags: Any, **options: Any) -> Dashboard:
    """Serve the dashboard under ``prefix`` of ``app``; returns it. ``options``: see
    :class:`~rampup.dashboard.Dashboard` (``authorize`` is required outside debug mode)."""
    authorize = options.get("authorize")
    if authorize is not None:
        options["authorize"] = _in_request_context(app, authorize)
    dashboard = Dashboard(flags, **options)
    app.wsgi_app = mount_wsgi(app.wsgi_app, prefix, dashboard.wsgi)  # type: ignore[method-assign]
    app.extensions["rampup.dashboard"] = dashboard
    return dashboard
