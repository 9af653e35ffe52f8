"""``"rampup.django.context_processors.flags"``: ``flags`` in every template context.

``{{ flags.all|json_script:"flags" }}`` hands every flag to a front end; ``{% if
flags.new_checkout %}`` reads one (Django variable names cannot contain ``-``, so
``new_checkout`` finds the flag ``new-checkout`` when no flag is named ``new_checkout``).
"""

from __future__ import annotations

from typing import Any

from ..context import Flags

__all__ = ["TemplateFlags", "flags"]


class TemplateFlags:
    """A request's Flags as templates see them: ``flags.<key>`` is the value served."""

    __slots__ = ("_flags",)

    def __init__(self, f: Flags) -> None:
        self._flags = f

    def __getitem__(self, name: str) -> Any:
        f = self._flags
        known = f.snapshot.flags
        if name not in known:
            alt = name.replace("_", "-")
            if alt not in known:
                # KeyError makes Django try attributes next: flags.all, flags.decisions
                raise KeyError(name)
            name = alt
        return f.value(name)

    def __contains__(self, name: object) -> bool:
        known = self._flags.snapshot.flags
        return isinstance(name, str) and (name in known or name.replace("_", "-") in known)

    def all(self) -> dict[str, Any]:
        """Every flag's value for this request."""
        return self._flags.all()

    @property
    def decisions(self) -> Any:
        """The decisions made so far in this request."""
        return self._flags.decisions

    def __repr__(self) -> str:
        return f"<TemplateFlags {self._flags!r}>"


def flags(request: Any) -> dict[str, Any]:
    """Context processor: ``{"flags": TemplateFlags}`` for requests through the middleware."""
    f = getattr(request, "flags", None)
    return {"flags": TemplateFlags(f)} if isinstance(f, Flags) else {}
