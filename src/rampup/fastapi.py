"""FastAPI dependencies over the ASGI middleware.

Setup is the ASGI one-liner, ``app.add_middleware(RampupMiddleware, flags="flags.toml")``;
this module adds what FastAPI users reach for::

    from rampup.fastapi import Flags, flag_required, get_flags, identify

    @app.get("/checkout")
    def checkout(flags: Flags = Depends(get_flags)): ...

    @app.get("/admin", dependencies=[Depends(flag_required("admin-panel"))])
    def admin(): ...

    # the user of an auth dependency becomes the subject of every flag read afterwards
    user_flags = identify(current_user, key=lambda user: {"key": user.id, "email": user.email})

    @app.get("/")
    def index(flags: Flags = Depends(user_flags)): ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any

try:
    from fastapi import Depends, HTTPException, Request
    from fastapi.requests import HTTPConnection
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from .errors import MissingDependency

    raise MissingDependency('rampup.fastapi needs FastAPI: pip install "rampup[fastapi]"') from exc

from .asgi import SCOPE_KEY, RampupMiddleware
from .context import Flags
from .errors import UnboundFlagsError
from .lifecycle import RequestFlags
from .model import Subject

__all__ = ["Flags", "FlagsDep", "RampupMiddleware", "flag_required", "get_flags", "identify"]

log = logging.getLogger("rampup")

_UNBOUND = (
    "rampup.fastapi.get_flags: this request did not go through rampup's middleware. Add "
    '`app.add_middleware(rampup.asgi.RampupMiddleware, flags="flags.toml")` to the app.'
)


def get_flags(request: HTTPConnection) -> Flags:
    """Dependency: the request's :class:`~rampup.Flags` (``flags: Flags = Depends(get_flags)``),
    in HTTP routes and websocket endpoints alike (a websocket's flags come from its handshake).

    Raises :class:`~rampup.UnboundFlagsError` when the middleware is missing (a setup bug,
    so it fails loudly on the first request instead of serving defaults forever).
    """
    f = request.scope.get(SCOPE_KEY)
    if f is None:
        raise UnboundFlagsError(_UNBOUND)
    return f  # type: ignore[no-any-return]


#: ``flags: FlagsDep`` is the ``Annotated`` spelling of ``flags: Flags = Depends(get_flags)``.
FlagsDep = Annotated[Flags, Depends(get_flags)]


def flag_required(key: str, variant: str | None = None) -> Callable[..., None]:
    """A dependency that answers 404 unless ``key`` is on (or serves ``variant``)::

        @app.get("/beta", dependencies=[Depends(flag_required("new-checkout"))])

    404, not 403: a route that is not served for this subject does not exist for them.
    """

    def require_flag(flags: FlagsDep) -> None:
        served = flags.enabled(key) if variant is None else flags.variant(key) == variant
        if not served:
            raise HTTPException(status_code=404)

    require_flag.__name__ = f"flag_required[{key}{'=' + variant if variant else ''}]"
    return require_flag


def identify(
    dependency: Callable[..., Any], key: Callable[[Any], Any] | None = None
) -> Callable[..., Flags]:
    """A dependency giving the request's Flags, with the user of ``dependency`` (typically
    your auth dependency) as the subject::

        user_flags = identify(current_user, key=lambda u: {"key": u.id, "email": u.email})

        @app.get("/")
        def index(flags: Flags = Depends(user_flags)): ...

    ``key(user)`` (default: the user itself) may return a key, a :class:`~rampup.Subject` or
    a mapping with ``key`` and attributes, as the ``user=`` option does. A None user (or key)
    leaves the request anonymous. FastAPI runs the auth dependency once per request however
    many routes or dependencies use it. The subject must be set before the first flag read of
    the request (see :meth:`RequestFlags.identify <rampup.lifecycle.RequestFlags.identify>`).
    """

    def identified_flags(request: Request, user: Any = Depends(dependency)) -> Flags:  # noqa: B008
        f = get_flags(request)
        if user is not None and isinstance(f, RequestFlags):
            try:
                _identify(f, key(user) if key is not None else user)
            except Exception:  # a user hook: it must not break the request
                log.exception("rampup: identify(key=...) failed; the request stays anonymous")
        return f

    return identified_flags


def _identify(f: RequestFlags, result: Any) -> None:
    if result is None:
        return
    if isinstance(result, Subject):
        f.identify(result.key, result.attributes)
    elif isinstance(result, Mapping):
        f.identify(result.get("key"), {k: v for k, v in result.items() if k != "key"})
    else:
        f.identify(result)
