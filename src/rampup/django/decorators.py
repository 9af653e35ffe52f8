"""``@flag_required("new-checkout")``: a view guard that answers 404 unless the flag is served."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import Http404  # type: ignore[import-untyped]

from ..context import Flags, current

__all__ = ["flag_required", "request_flags"]

V = TypeVar("V", bound=Callable[..., Any])


def request_flags(request: Any) -> Flags:
    """``request.flags`` when the middleware set it, else the bound ``rampup.flags`` (which
    raises :class:`~rampup.UnboundFlagsError`, naming the fix, when there is none)."""
    f = getattr(request, "flags", None)
    return f if isinstance(f, Flags) else current()


def served(f: Flags, key: str, variant: str | None = None) -> bool:
    """True when ``key`` is enabled (or, given ``variant``, serves that variant)."""
    return f.enabled(key) if variant is None else f.variant(key) == variant


def flag_required(key: str, variant: str | None = None) -> Callable[[V], V]:
    """Serve the view only when flag ``key`` is on (or serves ``variant``); else raise
    :class:`~django.http.Http404`, so unreleased pages do not exist. Sync and async views.

    ``@method_decorator(flag_required("new-checkout"), name="dispatch")`` on class-based views.
    """

    def decorate(view: V) -> V:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
                if not served(request_flags(request), key, variant):
                    raise Http404(f"flag {key!r} is not served")
                return await view(request, *args, **kwargs)

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(view)
        def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not served(request_flags(request), key, variant):
                raise Http404(f"flag {key!r} is not served")
            return view(request, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
