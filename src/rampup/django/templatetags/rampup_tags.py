"""``{% load rampup_tags %}``: read flags in Django templates.

- ``{% flag "new-checkout" %}new{% else %}old{% endflag %}``, or with a variant:
  ``{% flag "checkout-button" "green" %}...{% endflag %}``.
- ``{% flag_value "checkout-button" %}`` / ``{% flag_variant "checkout-button" as v %}``.

The tags read the request's Flags (``request.flags``, else the bound ``rampup.flags``), so
a template decides each flag exactly as the view did. Rendered outside any request (an email in
a worker), ``{% flag %}`` renders its ``else`` branch and the others render nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template  # type: ignore[import-untyped]

from ...context import Flags, current_or_none
from ..decorators import served

__all__ = ["FlagNode", "register"]

log = logging.getLogger("rampup")

register = template.Library()


def flags_in(context: Any) -> Flags | None:
    """The Flags for this render: the context's request's, else the bound one, else None."""
    request = context.get("request")
    f = getattr(request, "flags", None) if request is not None else None
    if isinstance(f, Flags):
        return f
    f = current_or_none()
    if f is None:
        log.warning(
            "rampup: a template read a flag outside a request (no request.flags and "
            "no bound rampup.flags); rendering as if it were off"
        )
    return f


class FlagNode(template.Node):  # type: ignore[misc]
    """``{% flag key [variant] %}...{% else %}...{% endflag %}``."""

    child_nodelists = ("nodelist_true", "nodelist_false")

    def __init__(self, key: Any, variant: Any, nodelist_true: Any, nodelist_false: Any) -> None:
        self.key = key
        self.variant = variant
        self.nodelist_true = nodelist_true
        self.nodelist_false = nodelist_false

    def __repr__(self) -> str:
        return f"<FlagNode {self.key.token}>"

    def render(self, context: Any) -> str:
        """The body if the flag is on (or serves ``variant``), else the ``else`` branch."""
        f = flags_in(context)
        key = self.key.resolve(context)
        variant = self.variant.resolve(context) if self.variant is not None else None
        on = f is not None and served(f, str(key), None if variant is None else str(variant))
        return str((self.nodelist_true if on else self.nodelist_false).render(context))


def do_flag(parser: Any, token: Any) -> FlagNode:
    """Compile ``{% flag key [variant] %}...{% else %}...{% endflag %}`` to a FlagNode."""
    bits = token.split_contents()
    if len(bits) not in (2, 3):
        raise template.TemplateSyntaxError(
            f"{bits[0]!r} takes a flag key and an optional variant: "
            '{% flag "new-checkout" %} or {% flag "checkout-button" "green" %}'
        )
    key = parser.compile_filter(bits[1])
    variant = parser.compile_filter(bits[2]) if len(bits) == 3 else None
    nodelist_true = parser.parse(("else", "endflag"))
    if parser.next_token().contents == "else":
        nodelist_false = parser.parse(("endflag",))
        parser.delete_first_token()
    else:
        nodelist_false = template.NodeList()
    return FlagNode(key, variant, nodelist_true, nodelist_false)


def flag_value(context: Any, key: str, default: Any = "") -> Any:
    """``{% flag_value "checkout-button" %}``: the value served (``default``, "" unless
    given, for an unknown flag or outside a request: a template should not print None)."""
    f = flags_in(context)
    value = default if f is None else f.value(key, default)
    return default if value is None else value


def flag_variant(context: Any, key: str) -> str:
    """``{% flag_variant "checkout-button" %}``: the variant's name ("" if unknown)."""
    f = flags_in(context)
    return (f.variant(key) if f is not None else None) or ""


def rampup_client_flags(context: Any, element_id: str = "rampup-flags") -> str:
    """``{% rampup_client_flags %}``: the request's ``client = true`` flags as a JSON
    ``<script type="application/json">`` element (values only, escaped for HTML)."""
    from django.utils.safestring import mark_safe  # type: ignore[import-untyped]

    from ...client import script_tag

    f = flags_in(context)
    # script_tag escapes < > & in the JSON, so no value can close the element.
    return mark_safe(script_tag(f, element_id) if f is not None else _empty_script(element_id))  # type: ignore[no-any-return]


def _empty_script(element_id: str) -> str:
    """The element with no flags (a render outside any request)."""
    from html import escape

    return f'<script type="application/json" id="{escape(element_id)}">{{}}</script>'


register.tag("flag", do_flag)
register.simple_tag(rampup_client_flags, takes_context=True)
register.simple_tag(flag_value, takes_context=True)
register.simple_tag(flag_variant, takes_context=True)
