"""Mount the dashboard in Starlette or FastAPI, in one line::

    from starlette.routing import Mount
    from rampup.dashboard.starlette import dashboard

    app.router.routes.append(Mount("/_rampup", app=dashboard(source, authorize=...)))
    # or: app.mount("/_rampup", dashboard(source, authorize=...))

The dashboard is a plain ASGI app (``Dashboard(...).asgi``); this helper only builds it.
"""

from __future__ import annotations

from typing import Any

from .app import Dashboard

__all__ = ["dashboard"]


def dashboard(flags: Any, **options: Any) -> Any:
    """The dashboard's ASGI app for a ``Mount`` (``options``: see
    :class:`~rampup.dashboard.Dashboard`)."""
    return Dashboard(flags, **options).asgi
