"""Type-checked only (mypy --strict): the dashboard API as users write it."""

from __future__ import annotations

from typing import Any

from rampup.dashboard import Dashboard, Request, Unprotected, asgi, mount_wsgi, wsgi
from rampup.outcomes import OutcomeSnapshot


def by_proxy_header(request: Request) -> str | None:
    user: str | None = request.headers.get("x-forwarded-user")
    return user


def mounted(app: Any) -> None:
    dash = Dashboard("flags.toml", authorize=by_proxy_header, secret="shared", guard=None)
    combined: Any = mount_wsgi(app, "/_rampup", dash.wsgi)
    asgi_app: Any = asgi("redis://localhost:6379/0?namespace=shop", authorize=by_proxy_header)
    wsgi_app: Any = wsgi("flags.toml", debug=True)
    fleet = Dashboard(
        "flags.toml",
        authorize=lambda r: "ann",
        outcomes=OutcomeSnapshot,
        outcomes_label="fleet-wide",
    )
    writable: bool = fleet.writable
    error: type[ValueError] = Unprotected
    del combined, asgi_app, wsgi_app, writable, error
