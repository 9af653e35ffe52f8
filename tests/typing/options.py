"""Type-checked only (mypy --strict): the typed options catch typos before anything runs.

Each ``# type: ignore[...]`` below marks an error mypy must report: with
``warn_unused_ignores`` (strict), a typo that stopped being caught fails the type check.
"""

from __future__ import annotations

from typing import Any

from rampup import Options


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return [b""]


def good() -> None:
    from rampup.flask import Rampup
    from rampup.wsgi import RampupMiddleware

    RampupMiddleware(wsgi_app, flags="flags.toml", user_header="X-User-Id", overrides="signed")
    Rampup(None, flags="flags.toml", cookie_samesite="Strict", telemetry=False)
    Options(user_header="X-User-Id", overrides="off", telemetry="auto")


def typos() -> None:
    from starlette.applications import Starlette

    from rampup.asgi import RampupMiddleware as ASGIMiddleware
    from rampup.flask import Rampup
    from rampup.wsgi import RampupMiddleware

    RampupMiddleware(wsgi_app, flags="flags.toml", user_headr="X-User-Id")  # type: ignore[call-arg]
    RampupMiddleware(wsgi_app, overrides="signd")  # type: ignore[arg-type]
    Rampup(None, cookie_samesite="lax")  # type: ignore[arg-type]
    Options(overrides="opne")  # type: ignore[arg-type]
    app = Starlette()
    app.add_middleware(ASGIMiddleware, flags="flags.toml", user_headr="X")  # type: ignore[call-arg]
