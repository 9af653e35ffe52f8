"""One small interface over each framework's own test client, so every framework runs the same
scenarios: ``get(path, user)``, ``post(path, data, user)`` -> (status, text, headers)."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

PREFIX = "/_rampup"


def authorize(request: Any) -> str | None:
    """The test apps' callback: the user an authenticating proxy names in X-User."""
    return request.headers.get("x-user") or None


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no form with a CSRF token on the page"
    return m.group(1)


class FlaskClient:
    """The dashboard mounted in a Flask app, through Flask's test client."""

    def __init__(self, flags: Any) -> None:
        from flask import Flask

        from rampup.dashboard.flask import mount

        app = Flask("shop")

        @app.get("/")
        def home() -> str:
            return "the shop"

        mount(app, PREFIX, flags=flags, authorize=authorize)
        self.client = app.test_client()

    def get(self, path: str, user: str | None = "alice") -> tuple[int, str, Any]:
        r = self.client.get(path, headers={"X-User": user} if user else {})
        return r.status_code, r.get_data(as_text=True), r.headers

    def post(self, path: str, data: dict[str, str], user: str | None = "alice") -> Any:
        r = self.client.post(path, data=data, headers={"X-User": user} if user else {})
        return r.status_code, r.get_data(as_text=True), r.headers


class DjangoClient:
    """The dashboard included in a Django urls.py, through Django's test client."""

    def __init__(self, flags: Any) -> None:
        from django.test import Client, override_settings
        from django.urls import clear_url_caches, path

        from rampup.dashboard.django import urls

        conf = ModuleType("dashboard_urls")  # a urls.py, built here
        conf.urlpatterns = [  # type: ignore[attr-defined]
            path("_rampup/", urls(flags=flags, authorize=authorize))
        ]
        self.override = override_settings(ROOT_URLCONF=conf)
        self.override.enable()
        clear_url_caches()
        self.client = Client()

    def close(self) -> None:
        from django.urls import clear_url_caches

        self.override.disable()
        clear_url_caches()

    def get(self, path: str, user: str | None = "alice") -> tuple[int, str, Any]:
        r = self.client.get(path, headers={"X-User": user} if user else {})
        return r.status_code, r.content.decode(), r.headers

    def post(self, path: str, data: dict[str, str], user: str | None = "alice") -> Any:
        r = self.client.post(path, data=data, headers={"X-User": user} if user else {})
        return r.status_code, r.content.decode(), r.headers


class StarletteClient:
    """The dashboard in a FastAPI app through ``Mount``, through Starlette's TestClient."""

    def __init__(self, flags: Any) -> None:
        from fastapi import FastAPI
        from starlette.routing import Mount
        from starlette.testclient import TestClient

        from rampup.dashboard.starlette import dashboard

        app = FastAPI()

        @app.get("/")
        def home() -> str:
            return "the shop"

        app.router.routes.append(Mount(PREFIX, app=dashboard(flags, authorize=authorize)))
        self.client = TestClient(app, follow_redirects=False)

    def get(self, path: str, user: str | None = "alice") -> tuple[int, str, Any]:
        r = self.client.get(path, headers={"X-User": user} if user else {})
        return r.status_code, r.text, r.headers

    def post(self, path: str, data: dict[str, str], user: str | None = "alice") -> Any:
        r = self.client.post(path, data=data, headers={"X-User": user} if user else {})
        return r.status_code, r.text, r.headers
