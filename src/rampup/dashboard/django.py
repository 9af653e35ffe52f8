"""Mount the dashboard in Django's ``urls.py``, in one line::

    from rampup.dashboard.django import urls as rampup_dashboard

    urlpatterns = [
        path("_rampup/", rampup_dashboard(flags=source, authorize=lambda r: ...)),
    ]

The callback gets the dashboard's :class:`~rampup.dashboard.Request`; Django's own
``HttpRequest`` is ``request.native`` (``lambda r: r.native.user.is_staff and
r.native.user.get_username()``). The view is exempt from Django's CSRF middleware because the
dashboard checks its own token (HMAC of a per-session value) on every POST.
"""

from __future__ import annotations

from typing import Any

try:
    from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
    from django.urls import include, re_path  # type: ignore[import-untyped]
    from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - the django extra is installed in tests
    from ..errors import MissingDependency

    raise MissingDependency(
        'rampup.dashboard.django needs Django: pip install "rampup[django]"'
    ) from exc

from .app import Dashboard
from .http import Request

__all__ = ["urls"]


def urls(*, flags: Any, **options: Any) -> Any:
    """An ``include()`` of the dashboard's URL patterns (``options``: see
    :class:`~rampup.dashboard.Dashboard`)."""
    dashboard = Dashboard(flags, **options)

    @csrf_exempt  # type: ignore[untyped-decorator]
    def view(request: HttpRequest, rest: str = "") -> HttpResponse:
        path = "/" + rest
        full = request.path
        root = full[: len(full) - len(rest)].rstrip("/") if rest else full.rstrip("/")
        headers = {k.lower(): v for k, v in request.headers.items()}
        req = Request(
            method=request.method or "GET",
            root=root,
            path=path,
            query={k: request.GET.get(k, "") for k in request.GET},
            headers=headers,
            remote_addr=str(request.META.get("REMOTE_ADDR", "")),
            scheme=request.scheme or "http",
            environ=request.META,
            native=request,
            # Django has read the body already (urlencoded or multipart)
            parsed_form={k: str(request.POST.get(k, ""))[:4096] for k in list(request.POST)[:20]}
            if request.method == "POST"
            else None,
        )
        out = dashboard.handle(req)
        response = HttpResponse(out.encoded(), status=out.status, content_type=out.content_type)
        for k, v in out.headers:
            if k.lower() == "set-cookie":
                response.cookies.load(v)  # Django sends cookies from .cookies, not headers
            else:
                response.headers[k] = v
        return response

    return include([re_path(r"^(?P<rest>.*)$", view, name="rampup-dashboard")])
