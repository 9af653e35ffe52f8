"""Mount the dashboard in a Flask app, in one line::

    from rampup.dashboard.flask import mount
    mount(app, "/_rampup", flags=source, authorize=lambda request: ...)

The dashboard is served as a WSGI app beside Flask's (like werkzeug's ``DispatcherMiddleware``),
so it needs no blueprint, no Flask session and no template folder.
"""

from __future__ import annotations

from typing import Any

try:
    import flask
except ImportError as exc:  # pragma: no cover - the flask extra is installed in tests
    from ..errors import MissingDependency

    raise MissingDependency(
        'rampup.dashboard.flask needs Flask: pip install "rampup[flask]"'
    ) from exc

from .app import Dashboard
from .http import mount_wsgi

__all__ = ["mount"]


def mount(app: flask.Flask, prefix: str = "/_rampup", *, flags: Any, **options: Any) -> Dashboard:
    """Serve the dashboard under ``prefix`` of ``app``; returns it. ``options``: see
    :class:`~rampup.dashboard.Dashboard` (``authorize`` is required outside debug mode)."""
    dashboard = Dashboard(flags, **options)
    app.wsgi_app = mount_wsgi(app.wsgi_app, prefix, dashboard.wsgi)  # type: ignore[method-assign]
    app.extensions["rampup.dashboard"] = dashboard
    return dashboard
