"""The Django middleware, template tags and decorator, through Django's own test clients."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.template import Context, Template
from django.template.loader import render_to_string
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

import rampup
from django_setup import configure_django
from rampup import Reason, Snapshot
from rampup.context import Flags, current
from rampup.django import RampupMiddleware, flag_required
from rampup.django import defaults as rampup_defaults
from rampup.django.conf import known_settings
from rampup.django.middleware import DjangoView
from rampup.subject import RequestAttributes, valid_anonymous_id

# Every test applies its own settings with override_settings (see django_setup).
configure_django()

FLAGS: dict[str, Any] = {
    "version": 1,
    "flags": {
        "plain": {"default": "on"},
        "dark": {"default": "off"},
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "new-checkout": {
            "rules": [
                {"conditions": [{"attribute": "key", "op": "in", "value": ["vip"]}], "serve": "on"}
            ]
        },
        "color": {
            "variants": {"red": "#f00", "blue": "#00f"},
            "default": "red",
            "rules": [
                {
                    "conditions": [
                        {"attribute": "header.x-color", "op": "equals", "value": "blue"}
                    ],
                    "serve": "blue",
                }
            ],
        },
    },
}
ANON = "0123456789abcdef0123456789abcdef"
MIDDLEWARE = ["rampup.django.RampupMiddleware"]

TEMPLATES_SRC = {
    "agree.html": '{% load rampup_tags %}{% flag "split" %}on{% else %}off{% endflag %}'
    '|{% flag_variant "split" %}',
    "branches.html": '{% load rampup_tags %}{% flag "plain" %}P-on{% else %}P-off{% endflag %}'
    '{% flag "dark" %}D-on{% else %}D-off{% endflag %}'
    '{% flag "color" "blue" %}C-blue{% else %}C-other{% endflag %}'
    '{% flag "dark" %}no-else{% endflag %}'
    '[{% flag_value "color" %}][{% flag_value "nope" "dflt" %}]',
    "as.html": '{% load rampup_tags %}{% flag_variant "color" as v %}[{{ v }}]'
    '{% flag_variant "nope" %}[{% flag_value "dark" %}]',
    "processor.html": "{% if flags.new_checkout %}NC-on{% else %}NC-off{% endif %}"
    "{% if flags.plain %}|P-on{% endif %}|{{ flags.color }}"
    '|{{ flags.all|json_script:"flags" }}',
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "OPTIONS": {
            "loaders": [("django.template.loaders.locmem.Loader", TEMPLATES_SRC)],
            "context_processors": ["rampup.django.context_processors.flags"],
            "libraries": {"rampup_tags": "rampup.django.templatetags.rampup_tags"},
        },
    }
]


class Recorder:
    """A listener that records every decision and every request end."""

    def __init__(self) -> None:
        self.decided: list[str] = []
        self.ends: list[tuple[int | None, BaseException | None]] = []

    def on_decision(self, flags: Flags, decision: Any) -> None:
        self.decided.append(decision.key)

    def on_request_end(self, flags: Flags, status: int | None, error: BaseException | None) -> None:
        self.ends.append((status, error))


class Boom(Exception):
    """What the failing view raises."""


# -- views -----------------------------------------------------------------------------------
def agree(request: Any) -> HttpResponse:
    first = request.flags.variant("split")
    again = rampup.flags.variant("split")
    rendered = render_to_string("agree.html", request=request)
    return JsonResponse(
        {"request": first, "proxy": again, "template": rendered, "same": request.flags is current()}
    )


def read(request: Any, key: str) -> JsonResponse:
    f = request.flags
    return JsonResponse(
        {
            "value": f.value(key),
            "variant": f.variant(key),
            "reason": f.decision(key).reason.value,
            "subject": f.subject.key,
        }
    )


def boom(request: Any) -> HttpResponse:
    rampup.flags.enabled("split")
    raise Boom("from the view")


@flag_required("new-checkout")
def guarded(request: Any) -> HttpResponse:
    return HttpResponse("checkout")


@flag_required("color", variant="blue")
def guarded_variant(request: Any) -> HttpResponse:
    return HttpResponse("blue")


@flag_required("new-checkout")
async def guarded_async(request: Any) -> HttpResponse:
    return HttpResponse("async checkout")


async def async_read(request: Any) -> JsonResponse:
    await asyncio.sleep(0)
    return JsonResponse(
        {
            "request": request.flags.variant("split"),
            "proxy": rampup.flags.variant("split"),
            "subject": rampup.flags.subject.key,
        }
    )


def template(request: Any, name: str) -> HttpResponse:
    return HttpResponse(render_to_string(name, request=request))


def stream(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        yield b"start|"
        yield str(rampup.flags.enabled("plain")).encode()  # read while the server streams

    return StreamingHttpResponse(body())


def stream_subject(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        yield b"start|"
        # The first subject-dependent read happens while the server streams: the subject
        # comes from the request, which rampup holds only weakly.
        yield f"{rampup.flags.variant('split')}|{rampup.flags.subject.key}".encode()

    return StreamingHttpResponse(body())


def identity(request: Any) -> JsonResponse:
    return JsonResponse(
        {"subject": request.flags.subject.key, "same_request": request.flags.request() is request}
    )


def maybe_read(request: Any) -> HttpResponse:
    """Reads a split and the subject when rampup is installed; bare Django serves it too."""
    f = getattr(request, "flags", None)
    return HttpResponse(f"{f.enabled('split')} {f.subject.key}" if f is not None else "bare")


def user_from_request(request: Any) -> Any:
    """A USER callback (referenced by dotted path in a test)."""
    return request.META.get("HTTP_X_LOGIN")


@method_decorator(flag_required("new-checkout"), name="dispatch")
class GuardedView(View):
    def get(self, request: Any) -> HttpResponse:
        return HttpResponse("class-based")


async def async_thread(request: Any) -> JsonResponse:
    return JsonResponse({"thread": threading.get_ident(), "split": rampup.flags.variant("split")})


urlpatterns = [
    path("async-thread", async_thread),
    path("guarded-cbv", GuardedView.as_view()),
    path("agree", agree),
    path("read/<str:key>", read),
    path("boom", boom),
    path("guarded", guarded),
    path("guarded-variant", guarded_variant),
    path("guarded-async", guarded_async),
    path("async-read", async_read),
    path("template/<str:name>", template),
    path("stream", stream),
    path("stream-subject", stream_subject),
    path("identity", identity),
    path("maybe-read", maybe_read),
]


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    """This module's URLs, middleware and templates; flags from FLAGS (no file, no thread)."""
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=MIDDLEWARE,
        TEMPLATES=TEMPLATES,
        ALLOWED_HOSTS=["testserver"],
        RAMPUP={"FLAGS": FLAGS},
    ):
        yield


def rampup_settings(**options: Any) -> Any:
    """override_settings for RAMPUP, with FLAGS unless given."""
    return override_settings(RAMPUP={"FLAGS": FLAGS, **options})


# -- the request's flags ---------------------------------------------------------------------
def test_request_flags_proxy_and_template_agree_and_decide_once() -> None:
    """request.flags, rampup.flags and {% flag %} see one decision, made once per request."""
    rec = Recorder()
    with rampup_settings(LISTENERS=[rec]):
        for _ in range(8):
            data = Client().get("/agree").json()
            assert data["request"] == data["proxy"]
            assert data["template"] == f"{data['request']}|{data['request']}"
            assert data["same"] is True
    assert rec.decided == ["split"] * 8
    assert [status for status, _ in rec.ends] == [200] * 8
    assert not rampup.flags.bound


def test_cookie_not_minted_without_a_split() -> None:
    """A request that reads only non-split flags sets no anonymous id cookie."""
    response = Client().get("/read/plain")
    assert response.json()["value"] is True
    assert "rampup_id" not in response.cookies


def test_cookie_minted_when_a_split_used_it() -> None:
    """Reading a split mints an id and sets it HttpOnly, SameSite=Lax, long-lived, Path=/."""
    response = Client().get("/read/split")
    data = response.json()
    assert data["reason"] == Reason.SPLIT.value
    morsel = response.cookies["rampup_id"]
    assert morsel.value == data["subject"]
    assert valid_anonymous_id(morsel.value)
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == rampup_defaults.COOKIE_MAX_AGE
    assert not morsel["secure"]
    assert list(response.cookies) == ["rampup_id"]  # one Set-Cookie, not a raw header too
    assert "Set-Cookie" not in response.headers


def test_cookie_secure_on_https_and_configurable() -> None:
    """Secure follows request.is_secure(); name, domain, path and SameSite come from RAMPUP."""
    assert Client().get("/read/split", secure=True).cookies["rampup_id"]["secure"] is True
    with rampup_settings(
        COOKIE_NAME="vid",
        COOKIE_DOMAIN="example.com",
        COOKIE_PATH="/app",
        COOKIE_SAMESITE="Strict",
        COOKIE_SECURE=True,
        COOKIE_MAX_AGE=60,
    ):
        morsel = Client().get("/read/split").cookies["vid"]
    assert (morsel["domain"], morsel["path"], morsel["samesite"]) == (
        "example.com",
        "/app",
        "Strict",
    )
    assert morsel["secure"] is True
    assert morsel["max-age"] == 60


def test_valid_cookie_is_reused() -> None:
    """A valid anonymous id cookie is the subject key and is not set again."""
    client = Client()
    client.cookies["rampup_id"] = ANON
    response = client.get("/read/split")
    assert response.json()["subject"] == ANON
    assert "rampup_id" not in response.cookies


def test_sticky_across_requests() -> None:
    """The minted id, sent back by the client, keeps the visitor in the same bucket."""
    client = Client()
    first = client.get("/read/split")
    minted = first.cookies["rampup_id"].value
    for _ in range(5):
        again = client.get("/read/split")
        assert again.json() == {**first.json(), "subject": minted}
        assert "rampup_id" not in again.cookies


@pytest.mark.parametrize("bad", ["not-an-id", "A" * 32, "0" * 31, "x" * 5000])
def test_malformed_cookie_is_replaced(bad: str) -> None:
    """A malformed or oversized id cookie is never trusted: a fresh id replaces it."""
    client = Client()
    client.cookies["rampup_id"] = bad
    response = client.get("/read/split")
    assert response.status_code == 200
    new = response.cookies["rampup_id"].value
    assert new != bad
    assert valid_anonymous_id(new)
    assert response.json()["subject"] == new


# -- the subject -----------------------------------------------------------------------------
def test_user_from_header() -> None:
    """USER_HEADER names the request header carrying the user id."""
    with rampup_settings(USER_HEADER="X-User-Id"):
        response = Client().get("/read/new-checkout", headers={"X-User-Id": "vip"})
    assert response.json()["subject"] == "vip"
    assert response.json()["value"] is True
    assert "rampup_id" not in response.cookies


def test_user_from_cookie() -> None:
    """USER_COOKIE names the cookie carrying the user id."""
    client = Client()
    client.cookies["uid"] = "vip"
    with rampup_settings(USER_COOKIE="uid"):
        assert client.get("/read/new-checkout").json()["value"] is True


def test_user_from_callback_given_the_http_request() -> None:
    """USER (a callable, or a dotted path) receives the HttpRequest; its key is the subject."""
    seen: list[Any] = []

    def user(request: Any) -> Any:
        seen.append(request)
        return {"key": "vip", "plan": "pro"}

    with rampup_settings(USER=user):
        data = Client().get("/identity").json()
    assert data == {"subject": "vip", "same_request": True}
    assert type(seen[0]).__name__ == "WSGIRequest"
    with rampup_settings(USER=f"{__name__}.user_from_request"):
        client = Client()
        assert client.get("/identity", headers={"X-Login": "u7"}).json()["subject"] == "u7"
        anon = client.get("/identity")  # callback returned None: anonymous id
        assert valid_anonymous_id(anon.json()["subject"])


def test_header_wins_over_callback_and_broken_callback_is_anonymous() -> None:
    """The header is tried first; a callback that raises leaves the request anonymous, not 500."""

    def broken(request: Any) -> Any:
        raise RuntimeError("auth backend down")

    with rampup_settings(USER_HEADER="X-User-Id", USER=broken):
        client = Client()
        assert client.get("/identity", headers={"X-User-Id": "h1"}).json()["subject"] == "h1"
        response = client.get("/read/split")
    assert response.status_code == 200
    assert valid_anonymous_id(response.json()["subject"])


# -- never in the way ------------------------------------------------------------------------
def test_view_exception_propagates_unchanged() -> None:
    """A view's exception reaches the caller as is; listeners see status 500 and the error."""
    rec = Recorder()
    with rampup_settings(LISTENERS=[rec]), pytest.raises(Boom) as info:
        Client(raise_request_exception=True).get("/boom")
    assert str(info.value) == "from the view"
    assert rec.ends == [(500, info.value)]
    assert not rampup.flags.bound
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500


class BrokenSource:
    """A source that serves its first snapshot (at start-up) and then fails on every read."""

    def __init__(self) -> None:
        self._snapshot = rampup.load(FLAGS)
        self.reads = 0

    @property
    def snapshot(self) -> Snapshot:
        self.reads += 1
        if self.reads > 1:
            raise OSError("the flag store is down")
        return self._snapshot


def test_rampup_failure_serves_every_flag_off(caplog: pytest.LogCaptureFixture) -> None:
    """If the source raises, the view still runs with every flag off (the middleware does not
    read the source again and raise into the app), and the failure is logged."""
    with rampup_settings(FLAGS=BrokenSource()), caplog.at_level(logging.ERROR, logger="rampup"):
        client = Client()
        response = client.get("/read/plain")
        dark = client.get("/read/dark")
        agree_data = client.get("/agree").json()
    assert response.status_code == 200
    assert response.json()["value"] is None
    assert response.json()["reason"] == dark.json()["reason"] == Reason.ERROR.value
    assert "could not open the request" in caplog.text
    assert agree_data["request"] == agree_data["proxy"]


def test_streaming_body_can_read_flags() -> None:
    """rampup.flags stays usable while a streaming response's body is produced."""
    response = Client().get("/stream")
    assert b"".join(response.streaming_content) == b"start|True"
    assert not rampup.flags.bound


def test_streamed_body_resolves_the_subject_from_the_live_request() -> None:
    """Under Django's own WSGI handler, a body streamed after the middleware returned can
    still resolve the subject from the request: Django keeps the request alive until the
    response is closed, even though rampup's reference to it is weak."""
    import gc

    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    env = RequestFactory().get("/stream-subject", HTTP_COOKIE=f"rampup_id={ANON}").environ
    response = WSGIHandler()(env, lambda *a: None)
    gc.collect()  # nothing but the response holds the request now
    try:
        body = b"".join(response)
    finally:
        response.close()
    assert body.startswith(b"start|")
    variant, key = body[len(b"start|") :].decode().split("|")
    assert key == ANON
    assert variant in ("on", "off")


def test_listed_twice_is_one_flags() -> None:
    """The middleware listed twice decides once: the inner one reuses the outer Flags."""
    rec = Recorder()
    with override_settings(MIDDLEWARE=MIDDLEWARE * 2), rampup_settings(LISTENERS=[rec]):
        data = Client().get("/agree").json()
    assert data["request"] == data["proxy"]
    assert rec.decided == ["split"]
    assert len(rec.ends) == 1


# -- guards ----------------------------------------------------------------------------------
def test_flag_required_404_unless_served() -> None:
    """flag_required answers 404 unless the flag is on (or serves the named variant)."""
    with rampup_settings(USER_HEADER="X-User-Id"):
        client = Client()
        assert client.get("/guarded").status_code == 404
        ok = client.get("/guarded", headers={"X-User-Id": "vip"})
        assert (ok.status_code, ok.content) == (200, b"checkout")
        assert client.get("/guarded-variant").status_code == 404
        assert client.get("/guarded-variant", headers={"X-Color": "blue"}).status_code == 200


def test_flag_required_on_class_based_view() -> None:
    """flag_required works through method_decorator on a class-based view's dispatch."""
    with rampup_settings(USER_HEADER="X-User-Id"):
        assert Client().get("/guarded-cbv").status_code == 404
        ok = Client().get("/guarded-cbv", headers={"X-User-Id": "vip"})
        assert (ok.status_code, ok.content) == (200, b"class-based")


def test_flag_required_on_async_view() -> None:
    """flag_required keeps an async view async and guards it, under WSGI and ASGI."""
    assert asyncio.iscoroutinefunction(guarded_async)
    with rampup_settings(USER_HEADER="X-User-Id"):
        assert Client().get("/guarded-async").status_code == 404
        assert Client().get("/guarded-async", headers={"X-User-Id": "vip"}).status_code == 200

        async def run() -> tuple[int, int, bytes]:
            client = AsyncClient()
            denied = await client.get("/guarded-async")
            ok = await client.get("/guarded-async", headers={"X-User-Id": "vip"})
            return denied.status_code, ok.status_code, ok.content

        assert asyncio.run(run()) == (404, 200, b"async checkout")


def test_flag_required_without_middleware_says_so() -> None:
    """Without the middleware the guard raises UnboundFlagsError naming the fix."""
    from django.test import RequestFactory

    with pytest.raises(rampup.UnboundFlagsError, match="RampupMiddleware"):
        guarded(RequestFactory().get("/guarded"))


# -- async -----------------------------------------------------------------------------------
def test_async_view_through_async_client() -> None:
    """Under ASGI an async view sees the same Flags via request.flags and rampup.flags."""

    async def run() -> list[Any]:
        client = AsyncClient()
        out = []
        for _ in range(3):
            response = await client.get("/async-read")
            out.append((response.json(), response.cookies.get("rampup_id")))
        sync_view = await client.get("/agree")
        out.append(sync_view.json())
        return out

    *runs, sync_data = asyncio.run(run())
    data, morsel = runs[0]
    assert data["request"] == data["proxy"]
    assert morsel is not None
    assert morsel.value == data["subject"]
    assert sync_data["request"] == sync_data["proxy"]
    assert sync_data["template"] == f"{sync_data['request']}|{sync_data['request']}"


def test_async_concurrent_requests_do_not_leak() -> None:
    """Concurrent ASGI requests, each a different user, each see only their own subject."""

    async def one(i: int) -> str:
        response = await AsyncClient().get("/async-read", headers={"X-User-Id": f"user-{i}"})
        return str(response.json()["subject"])

    async def run() -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in range(40))))

    with rampup_settings(USER_HEADER="X-User-Id"):
        assert asyncio.run(run()) == [f"user-{i}" for i in range(40)]


def test_middleware_is_sync_and_async_capable() -> None:
    """The middleware adapts to its get_response: a coroutine function under ASGI only."""
    assert RampupMiddleware.sync_capable
    assert RampupMiddleware.async_capable

    async def async_get_response(request: Any) -> HttpResponse:
        return HttpResponse()

    assert asyncio.iscoroutinefunction(RampupMiddleware(async_get_response))
    assert not asyncio.iscoroutinefunction(RampupMiddleware(lambda r: HttpResponse()))


# -- templates -------------------------------------------------------------------------------
def test_template_tag_renders_both_branches() -> None:
    """{% flag %} renders its body when served, its else branch (or nothing) when not."""
    plain = Client().get("/template/branches.html").content.decode()
    assert plain == "P-onD-offC-other[#f00][dflt]"
    blue = Client().get("/template/branches.html", headers={"X-Color": "blue"}).content.decode()
    assert blue == "P-onD-offC-blue[#00f][dflt]"


def test_value_and_variant_tags() -> None:
    """flag_variant supports `as`; unknown flags give an empty variant; values render."""
    html = Client().get("/template/as.html", headers={"X-Color": "blue"}).content.decode()
    assert html == "[blue][False]"


def test_context_processor_exposes_flags() -> None:
    """The context processor's flags gives values by key (_ for -) and every flag via all."""
    with rampup_settings(USER_HEADER="X-User-Id"):
        html = (
            Client().get("/template/processor.html", headers={"X-User-Id": "vip"}).content.decode()
        )
    head, script = html.split("|<script", 1)
    assert head == "NC-on|P-on|#f00"
    payload = json.loads(script[script.index(">") + 1 : script.index("</script>")])
    assert payload == {
        "plain": True,
        "dark": False,
        "split": payload["split"],
        "new-checkout": True,
        "color": "#f00",
    }


def test_template_outside_a_request_renders_else(caplog: pytest.LogCaptureFixture) -> None:
    """A template rendered outside any request takes the else branch and logs why."""
    t = Template('{% load rampup_tags %}{% flag "plain" %}on{% else %}off{% endflag %}')
    with caplog.at_level(logging.WARNING, logger="rampup"):
        assert t.render(Context()) == "off"
    assert "outside a request" in caplog.text


def test_installed_app_provides_tag_library() -> None:
    """With "rampup.django" in INSTALLED_APPS the app label is rampup and the tags load."""
    bare = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": True,
            "OPTIONS": {},
        }
    ]
    with override_settings(INSTALLED_APPS=["rampup.django"], TEMPLATES=bare):
        assert apps.get_app_config("rampup").name == "rampup.django"
        from django.template import engines

        t = engines["django"].from_string('{% load rampup_tags %}{% flag "x" %}a{% endflag %}')
        assert t.render({}) == ""


# -- settings --------------------------------------------------------------------------------
def test_unknown_setting_lists_known_ones() -> None:
    """An unknown RAMPUP key is ImproperlyConfigured, naming it, the likely fix and every
    known key."""
    with rampup_settings(USER_HEDER="X-User-Id"), pytest.raises(ImproperlyConfigured) as info:
        RampupMiddleware(lambda r: HttpResponse())
    message = str(info.value)
    assert "'USER_HEDER' (did you mean 'USER_HEADER'?)" in message
    assert "FLAGS" in message
    assert set(known_settings()) >= {"FLAGS", "USER", "COOKIE_NAME", "OVERRIDES", "WATCH"}


def test_missing_or_bad_settings_are_improperly_configured() -> None:
    """No FLAGS, a bad option value or an unimportable USER fail at startup, saying why."""
    with override_settings(RAMPUP={}), pytest.raises(ImproperlyConfigured, match="FLAGS"):
        RampupMiddleware(lambda r: HttpResponse())
    with (
        rampup_settings(OVERRIDES="sometimes"),
        pytest.raises(ImproperlyConfigured, match="overrides"),
    ):
        RampupMiddleware(lambda r: HttpResponse())
    with (
        rampup_settings(USER="no.such.module.user"),
        pytest.raises(ImproperlyConfigured, match="cannot import"),
    ):
        RampupMiddleware(lambda r: HttpResponse())
    with rampup_settings(FLAGS=42), pytest.raises(ImproperlyConfigured, match="FLAGS"):
        RampupMiddleware(lambda r: HttpResponse())
    with override_settings(RAMPUP=["FLAGS"]), pytest.raises(ImproperlyConfigured, match="dict"):
        RampupMiddleware(lambda r: HttpResponse())


def test_debug_and_secret_come_from_django_settings() -> None:
    """Options.debug and framework_secret default to DEBUG and SECRET_KEY; RAMPUP wins."""
    with override_settings(DEBUG=True, SECRET_KEY="s3cret"):
        s = RampupMiddleware(lambda r: HttpResponse()).runtime.options
        assert (s.debug, s.framework_secret) == (True, "s3cret")
        with rampup_settings(DEBUG=False, FRAMEWORK_SECRET="other"):
            s = RampupMiddleware(lambda r: HttpResponse()).runtime.options
            assert (s.debug, s.framework_secret) == (False, "other")


def test_defaults_module_matches_settings_defaults() -> None:
    """rampup.django.defaults states the same defaults as rampup.Options."""
    import dataclasses

    from rampup.options import Options

    for field in dataclasses.fields(Options):
        name = field.name.upper()
        if hasattr(rampup_defaults, name):
            expected = () if name == "LISTENERS" else field.default
            assert getattr(rampup_defaults, name) == expected, name


def test_flag_file_path_and_listener_dotted_path(tmp_path: Path) -> None:
    """FLAGS may be a flag file path; LISTENERS entries may be dotted paths to classes."""
    flag_file = tmp_path / "flags.toml"
    flag_file.write_text('version = 1\n[flags.from-file]\ndefault = "on"\n')
    with rampup_settings(FLAGS=str(flag_file), WATCH=False, LISTENERS=[f"{__name__}.Recorder"]):
        mw = RampupMiddleware(lambda r: HttpResponse())
        assert isinstance(mw.runtime.options.listeners[0], Recorder)
        assert Client().get("/read/from-file").json()["value"] is True


def test_request_view_reads_meta_lazily() -> None:
    """DjangoView reads headers, cookies and query from the HttpRequest, capping big values."""
    from django.test import RequestFactory

    request = RequestFactory().get(
        "/p?x=1",
        headers={"X-Color": "blue", "X-Big": "y" * 9000},
        HTTP_COOKIE='a=1; rampup_id="q"',
        REMOTE_ADDR="10.0.0.1",
    )
    view = DjangoView(request)
    assert view.header("x-color") == "blue"
    assert view.header("X-Big") is None
    assert view.cookie("rampup_id") == "q"
    assert view.query("x") == "1"
    assert (view.path, view.method, view.host, view.client_ip, view.scheme) == (
        "/p",
        "GET",
        "testserver",
        "10.0.0.1",
        "http",
    )
    # Conditions read attributes through .get, which takes header.<name> from META directly:
    # it must give what the generic lookup (through .header) gives, for every kind of name.
    assert (
        RequestAttributes(view).get("header.x-color")
        == RequestAttributes(view)["header.x-color"]
        == "blue"
    )
    assert RequestAttributes(view).get("header.x-big", "D") == "D"


def test_no_sync_async_adaptation_under_wsgi_or_asgi(caplog: pytest.LogCaptureFixture) -> None:
    """Django adapts no handler for the middleware under either client (it logs when it does)."""
    with override_settings(DEBUG=True), caplog.at_level(logging.DEBUG, logger="django.request"):
        assert Client().get("/read/plain").status_code == 200

        async def run() -> int:
            return (await AsyncClient().get("/async-read")).status_code

        assert asyncio.run(run()) == 200
    assert "adapted" not in caplog.text


class ThreadRecorder:
    """A listener that records the thread each request starts and ends on."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def on_decision(self, flags: Flags, decision: Any) -> None:
        pass

    def on_request_start(self, flags: Flags) -> None:
        self.threads.append(threading.get_ident())

    def on_request_end(self, flags: Flags, status: int | None, error: Any) -> None:
        self.threads.append(threading.get_ident())


def test_under_asgi_the_middleware_runs_on_the_event_loop_thread() -> None:
    """Under ASGI the middleware's request start and end run on the event loop's thread, as
    the async view does: Django adds no sync_to_async hop around rampup."""
    rec = ThreadRecorder()

    async def run() -> tuple[int, Any]:
        response = await AsyncClient().get("/async-thread")
        return threading.get_ident(), response

    with rampup_settings(LISTENERS=[rec]):
        loop_thread, response = asyncio.run(run())
    assert response.status_code == 200
    assert response.json()["thread"] == loop_thread
    assert rec.threads == [loop_thread, loop_thread]


def test_other_response_headers_and_cookies_are_added() -> None:
    """The override cookie (asked by the query parameter) and the report reach the response,
    once each, and no anonymous id cookie is set when no split was read."""
    from django.test import RequestFactory

    with rampup_settings(DEBUG=True, OVERRIDE_QUERY_PARAM="ro"):
        mw = RampupMiddleware(lambda r: HttpResponse(str(r.flags.enabled("dark"))))
        response = mw(RequestFactory().get("/", {"ro": "dark=on"}))
    assert response.content == b"True"
    assert "dark=on" in response["X-Rampup-Overrides"]
    morsel = response.cookies["rampup_override"]
    assert (morsel.value, morsel["path"], morsel["httponly"]) == ("dark=on", "/", True)
    assert "rampup_id" not in response.cookies


def test_inside_rampup_wsgi_middleware_reuses_its_flags() -> None:
    """Wrapped in rampup.wsgi, the Django middleware reuses the outer Flags: one cookie, once."""
    from wsgiref.util import setup_testing_defaults

    from django.core.handlers.wsgi import WSGIHandler

    from rampup.wsgi import RampupMiddleware as WSGIRampup

    rec = Recorder()
    app = WSGIRampup(WSGIHandler(), flags=FLAGS, listeners=[rec])
    environ: dict[str, Any] = {"PATH_INFO": "/agree", "HTTP_HOST": "testserver"}
    setup_testing_defaults(environ)
    seen: list[Any] = []
    body = app(environ, lambda status, headers, exc_info=None: seen.append(headers))
    data = json.loads(b"".join(body))
    body.close()  # type: ignore[attr-defined]
    assert data["request"] == data["proxy"]
    assert data["same"] is True
    assert rec.decided == ["split"]
    cookies = [v for k, v in seen[0] if k.lower() == "set-cookie"]
    assert len(cookies) == 1
    assert cookies[0].startswith("rampup_id=")


def test_rampup_failure_serves_every_flag_off_under_asgi() -> None:
    """Under ASGI too, a source that raises still serves the view, with every flag off."""

    async def run() -> Any:
        return await AsyncClient().get("/async-read")

    with rampup_settings(FLAGS=BrokenSource()):
        response = asyncio.run(run())
    assert response.status_code == 200
    assert response.json()["request"] is None
    assert response.json()["proxy"] is None
    assert "rampup_id" not in response.cookies


def test_import_guard_names_the_extra() -> None:
    """Without Django installed, importing rampup.django says what to pip install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['django'] = None\n"
        "try:\n    import rampup.django\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        'MissingDependency rampup.django needs Django: pip install "rampup[django]"'
    )


def test_requests_leave_no_more_garbage_than_bare_django(cyclic_garbage: Any) -> None:
    """request.flags -> Flags must not point back at the request: a cycle per request is
    memory only the garbage collector frees. With rampup in MIDDLEWARE, 100 requests that
    read flags (and resolve their subject from a callback) leave what bare Django leaves."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    env = RequestFactory().get("/maybe-read", HTTP_X_LOGIN="u-7").environ

    def garbage(middleware: list[str]) -> int:
        with override_settings(MIDDLEWARE=middleware), rampup_settings(USER=user_from_request):
            handler = WSGIHandler()

            def one(i: int) -> None:
                response = handler(dict(env), lambda *a: None)
                assert response.status_code == 200
                response.close()

            return int(cyclic_garbage(one))

    assert garbage(MIDDLEWARE) <= garbage([])
