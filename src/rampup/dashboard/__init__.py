"""``rampup.dashboard``: a control page mounted inside the app that already runs rampup.

Every flag with its state, rules in words, live per-variant figures and the store's history;
kill, unkill, roll back and advance through the Redis store's compare-and-set writes. One class,
:class:`Dashboard`, with a WSGI app (``.wsgi``) and an ASGI app (``.asgi``); the framework
helpers (``rampup.dashboard.flask``, ``.django``, ``.starlette``) mount it in one line. Nothing
here imports a framework: only those helper modules do.
"""

from __future__ import annotations

from typing import Any

from .app import Dashboard as Dashboard
from .http import Request as Request
from .http import mount_wsgi as mount_wsgi
from .security import Unprotected as Unprotected

__all__ = ["Dashboard", "Request", "Unprotected", "asgi", "mount_wsgi", "wsgi"]


def wsgi(flags: Any, **options: Any) -> Any:
    """The dashboard as a WSGI app: ``wsgi(source, authorize=...)`` (see :class:`Dashboard`)."""
    return Dashboard(flags, **options).wsgi


def asgi(flags: Any, **options: Any) -> Any:
    """The dashboard as an ASGI app, for ``Mount("/_rampup", app=asgi(source, authorize=...))``."""
    return Dashboard(flags, **options).asgi
