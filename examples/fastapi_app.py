"""rampup with FastAPI.

Install: ``pip install -e ".[examples]"`` from a checkout (Jinja2 and uvicorn included).
Run: ``python examples/fastapi_app.py`` (port 8003; ``PORT=...`` changes it)
then try::

    curl -i http://127.0.0.1:8003/                  # anonymous: old checkout, a rampup_id cookie
    curl -H 'Authorization: Bearer ann' http://127.0.0.1:8003/          # staff: new checkout
    curl -i http://127.0.0.1:8003/checkout/new      # 404: not served to anonymous visitors
    curl -H 'Authorization: Bearer ann' http://127.0.0.1:8003/checkout/new
    curl -H 'Authorization: Bearer ann' http://127.0.0.1:8003/flags.json

Edit examples/flags.toml while it runs: the change is served within a second, no restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import DictLoader, Environment

import rampup
from rampup.fastapi import FlagsDep, RampupMiddleware, flag_required, identify

FLAGS = Path(__file__).with_name("flags.toml")

PAGE = """<!doctype html>
<title>Shop</title>
<h1>Hello {{ user.name if user else "visitor" }}</h1>
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


@dataclass
class User:
    name: str
    email: str


USERS = {"ann": User("ann", "ann@example.com"), "bob": User("bob", "bob@customer.org")}


def current_user(authorization: Annotated[str | None, Header()] = None) -> User | None:
    """A stand-in for your auth dependency (OAuth2, sessions, ...): None when signed out."""
    return USERS.get((authorization or "").removeprefix("Bearer "))


# Every request's subject is the signed-in user, with their email for the `staff` segment.
user_flags = identify(current_user, key=lambda user: {"key": user.name, "email": user.email})

app = FastAPI(dependencies=[Depends(user_flags)])
app.add_middleware(RampupMiddleware, flags=FLAGS)


@app.get("/", response_class=HTMLResponse)
def index(request: Request, user: Annotated[User | None, Depends(current_user)]) -> Any:
    return templates.TemplateResponse(request, "index.html", {"user": user})


@app.get("/checkout/new", dependencies=[Depends(flag_required("new-checkout"))])
def new_checkout(flags: FlagsDep) -> dict[str, Any]:
    return {"checkout": "new", "button": flags.variant("checkout-button")}


@app.get("/checkout")
def old_checkout() -> dict[str, Any]:
    return {"checkout": "old"}


@app.get("/flags.json")
def all_flags(flags: FlagsDep) -> dict[str, Any]:
    return flags.all()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8003")))
