"""One line, as with a file: flags="redis://..." (and rediss:// with TLS and a password) in
as_source, the WSGI middleware, Flask's RAMPUP_FLAGS and Django's RAMPUP["FLAGS"]."""

from __future__ import annotations

import io
from typing import Any

import pytest

import rampup
from rampup.redis_source import RedisSource
from rampup.sources import as_source
from rampup.store import Store
from rampup.wsgi import RampupMiddleware
from redis_server import RedisServer

from .helpers import doc


@pytest.fixture
def shop(redis_url: str) -> str:
    """A namespace 'shop' holding the test document; its flags= URL."""
    store = Store(redis_url, "shop")
    store.push(doc(killed=("dark-mode",)))
    store.close()
    return redis_url + "?namespace=shop"


def test_as_source_takes_a_redis_url_with_its_namespace(shop: str) -> None:
    """as_source("redis://...?namespace=shop") is a RedisSource serving that namespace."""
    source = as_source(shop, watch=False)
    assert isinstance(source, RedisSource)
    assert source.namespace == "shop"
    assert source.snapshot.flags["dark-mode"].killed


def test_as_source_passes_a_redis_source_through_without_reading_it(shop: str) -> None:
    """A source object is used as is, and as_source does not start its watcher."""
    source = RedisSource(shop, watch=False)
    assert as_source(source) is source
    assert source._pid is None  # not read yet: no watcher started by the adapter set-up
    source.close()


def test_wsgi_middleware_serves_flags_from_redis(shop: str) -> None:
    """RampupMiddleware(app, flags="redis://...") serves the store's flags."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        f = rampup.flags
        return [f"{f.enabled('new-checkout')} {f.enabled('dark-mode')}".encode()]

    wrapped = RampupMiddleware(app, flags=shop, watch=False)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    body = b"".join(wrapped(environ, lambda status, headers, exc=None: None))
    assert body == b"True False"


def test_flask_config_takes_a_redis_url(shop: str) -> None:
    """app.config["RAMPUP_FLAGS"] = "redis://..." works like a file path."""
    flask = pytest.importorskip("flask")
    from rampup.flask import Rampup

    app = flask.Flask(__name__)
    app.config.update(RAMPUP_FLAGS=shop, RAMPUP_WATCH=False)
    Rampup(app)

    @app.get("/")
    def index() -> str:
        return str(flask.g.flags.enabled("dark-mode"))

    assert app.test_client().get("/").text == "False"


def test_django_settings_take_a_redis_url(shop: str) -> None:
    """settings.RAMPUP = {"FLAGS": "redis://..."} works like a file path."""
    pytest.importorskip("django")
    from django.http import HttpResponse
    from django.test import Client, override_settings
    from django.urls import path

    from django_setup import configure_django

    configure_django()

    def view(request: Any) -> HttpResponse:
        return HttpResponse(str(request.flags.enabled("new-checkout")))

    urls = type("urls", (), {"urlpatterns": [path("", view)]})
    with override_settings(
        ROOT_URLCONF=urls,
        MIDDLEWARE=["rampup.django.RampupMiddleware"],
        RAMPUP={"FLAGS": shop, "WATCH": False},
    ):
        assert Client().get("/").content == b"True"


def test_rediss_with_tls_and_a_password() -> None:
    """flags="rediss://:password@host/0?namespace=..." reaches a TLS redis-server."""
    with RedisServer(tls=True, password="s3cret") as server:
        url = server.url + "?ssl_cert_reqs=none"
        store = Store(url, "tls")
        store.push(doc())
        store.close()
        source = as_source(url + "&namespace=tls", watch=False)
        assert isinstance(source, RedisSource)
        assert source.status == "ready"
        assert "new-checkout" in source.snapshot.flags
        source.close()
        wrong = RedisSource(url.replace("s3cret", "nope") + "&namespace=tls", watch=False)
        assert wrong.status == "error"
        assert "unreachable" in (wrong.last_error or "")
