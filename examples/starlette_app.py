"""rampup with Starlette.

Install: ``pip install -e ".[examples]"`` from a checkout (Jinja2 and uvicorn included).
Run: ``python examples/starlette_app.py`` (port 8002; ``PORT=...`` changes it)
then try::

    curl -i http://127.0.0.1:8002/                  # anonymous: old checkout, a rampup_id cookie
    curl -H 'X-User-Id: ann' -H 'X-User-Email: ann@example.com' http://127.0.0.1:8002/
    curl -i http://127.0.0.1:8002/checkout/new      # 404: not served to anonymous visitors
    curl -H 'X-User-Id: qa-alice' http://127.0.0.1:8002/checkout/new
    curl http://127.0.0.1:8002/flags.json           # every flag, e.g. for a front end

Edit examples/flags.toml while it runs: the change is served within a second, no restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, Environment
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

import rampup
from rampup.asgi import RampupMiddleware

FLAGS = Path(__file__).with_name("flags.toml")

PAGE = """<!doctype html>
<title>Shop</title>
<h1>Hello {{ user }}</h1>
{% set colour = flags.value("checkout-button") %}
{% if flags.enabled("new-checkout") %}
  <a href="/checkout/new" style="background: {{ colour }}">New checkout</a>
{% else %}
  <a href="/checkout" style="background: {{ colour }}">Checkout</a>
{% endif %}
"""

templates = Jinja2Templates(
    env=Environment(loader=DictLoader({"index.html": PAGE}), autoescape=True)
)
templates.env.globals["flags"] = rampup.flags  # the current request's flags, in every template


def current_user(scope: Any) -> dict[str, Any] | None:
    """Who the request is for. Here: headers set by an auth gateway (strip them at your edge);
    in your app: your session or token. Returning None keeps the visitor anonymous."""
    headers = Request(scope).headers
    if "x-user-id" not in headers:
        return None
    return {"key": headers["x-user-id"], "email": headers.get("x-user-email", "")}


async def index(request: Request) -> Response:
    user = request.headers.get("x-user-id", "visitor")
    return templates.TemplateResponse(request, "index.html", {"user": user})


async def new_checkout(request: Request) -> Response:
    # A guarded route: it does not exist for subjects the flag is not served to.
    if not request.state.flags.enabled("new-checkout"):
        raise HTTPException(status_code=404)
    return PlainTextResponse(
        f"new checkout, {request.state.flags.variant('checkout-button')} button"
    )


async def old_checkout(request: Request) -> Response:
    return PlainTextResponse("the old checkout")


async def all_flags(request: Request) -> Response:
    return JSONResponse(request.state.flags.all())


app = Starlette(
    routes=[
        Route("/", index),
        Route("/checkout", old_checkout),
        Route("/checkout/new", new_checkout),
        Route("/flags.json", all_flags),
    ]
)
app.add_middleware(RampupMiddleware, flags=FLAGS, user=current_user)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8002")))
