"""Type-checked only (mypy --strict): the public API as users write it."""

from __future__ import annotations

import rampup
from rampup import Decision, Flags, Reason, Snapshot, Subject, flags

snapshot: Snapshot = rampup.load({"flags": {"new-checkout": {}}})
decision: Decision = snapshot.evaluate("new-checkout", Subject("user-42", {"plan": "pro"}))
reason: Reason = decision.reason
variant: str | None = decision.variant
per_request = Flags(snapshot, Subject("user-42"))
on: bool = per_request.enabled("new-checkout")
value: object = per_request.value("checkout-button", "#000")
everything: dict[str, object] = per_request.all()
for_browser: dict[str, object] = per_request.client()
base_flags: Snapshot = rampup.load({"flags": {}}, env="")
environment: str = base_flags.environment


def view() -> bool:
    return flags.enabled("new-checkout") and flags.variant("checkout-button") == "green"


def starlette_setup() -> None:
    from starlette.applications import Starlette

    from rampup.asgi import RampupMiddleware

    app = Starlette()
    app.add_middleware(RampupMiddleware, flags="flags.toml", user_header="X-User-Id")
