"""What Flask views and templates use to reach the request's flags: :func:`flag_required`,
the ``flags`` template global, and the lookup behind ``g.flags`` (:mod:`rampup.flask` sets
them up; import :func:`flag_required` from there).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, has_request_context, request

from .context import Flags, current_or_none
from .errors import UnboundFlagsError
from .wsgi import ENVIRON_KEY

__all__ = [
    "NO_FLAGS",
    "TEMPLATE_FLAGS",
    "TemplateFlags",
    "environ_flags",
    "flag_required",
    "request_flags",
]

log = logging.getLogger("rampup")

F = TypeVar("F", bound=Callable[..., Any])

NO_FLAGS = (
    "no rampup flags for this request: call Rampup(app) or ext.init_app(app) on the app "
    "that serves it (outside a request, build rampup.Flags(snapshot, subject) yourself)"
)


def environ_flags() -> Flags | None:
    """The Flags in the environ of Flask's current request context, if any: a request
    context copied into another thread (copy_current_request_context) does not carry the
    ContextVar; the environ does."""
    if has_request_context():
        return request.environ.get(ENVIRON_KEY)
    return None


def request_flags() -> Flags | None:
    """The current request's Flags, or None outside a request served through rampup."""
    return current_or_none() or environ_flags()


class TemplateFlags:
    """``flags`` in Jinja templates: ``{% if flags.enabled("new-checkout") %}``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # probes like __html__ must not depend on a request
            raise AttributeError(name)
        f = request_flags()
        if f is None:
            raise UnboundFlagsError(f"flags in a template: {NO_FLAGS}")
        return getattr(f, name)

    def __repr__(self) -> str:
        return f"<rampup template flags -> {request_flags()!r}>"


TEMPLATE_FLAGS = TemplateFlags()


def flag_required(key: str, variant: str | None = None) -> Callable[[F], F]:
    """Serve the view only when ``key`` is enabled (or serves ``variant``); 404 otherwise.

    ::

        @app.get("/admin")
        @flag_required("admin-panel")
        def admin(): ...
    """

    def served() -> bool:
        f = request_flags()
        if f is None:
            log.warning("rampup: flag_required(%r) outside a rampup request; answering 404", key)
            return False
        return f.enabled(key) if variant is None else f.variant(key) == variant

    def decorate(view: F) -> F:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                if not served():
                    abort(404)
                return await view(*args, **kwargs)

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not served():
                abort(404)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
