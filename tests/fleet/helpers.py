"""Small helpers shared by the fleet tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: a generous guard against hanging, not a timing threshold: the condition normally holds
#: within a second, and a failing test reports what it last saw
HANG_GUARD = 30.0


def wait_until(condition: Callable[[], Any], timeout: float = HANG_GUARD) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout} s")
        time.sleep(0.02)


def doc(*, killed: tuple[str, ...] = (), extra: str | None = None) -> dict[str, Any]:
    """A small valid flag document; ``killed`` flags carry the kill switch."""
    flags: dict[str, Any] = {
        "new-checkout": {
            "description": "the new checkout",
            "default": "off",
            "rules": [{"serve": "on"}],
        },
        "dark-mode": {"default": "off", "rules": [{"serve": "on"}]},
    }
    if extra:
        flags[extra] = {"default": "off"}
    for key in killed:
        flags[key]["killed"] = True
    return {"version": 1, "flags": flags}
