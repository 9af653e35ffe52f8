"""RampupTelemetry with the real OpenTelemetry SDK (in-memory exporters and metric reader) and
the real opentelemetry-instrumentation-wsgi / -asgi middleware wrapping apps that run rampup."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWSGI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import rampup
from rampup import Flags, Subject
from rampup._signing import sign
from rampup.telemetry import RampupTelemetry, VariantOutcome, error_rates
from rampup.wsgi import RampupMiddleware

ON_USERS = [f"on-{i}" for i in range(4)]
FLAGS = {
    "version": 1,
    "flags": {
        "new-checkout": {
            "default": "off",
            "rules": [
                {"conditions": [{"attribute": "key", "op": "in", "value": ON_USERS}], "serve": "on"}
            ],
        },
        "checkout-button": {"variants": {"blue": "#00f", "green": "#0f0"}, "default": "blue"},
        "dark-mode": {"default": "on"},
    },
}
SNAPSHOT = rampup.load(FLAGS)


@dataclass
class Otel:
    """A tracer and a meter provider of the real SDK, exporting to memory."""

    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out += [(dict(p.attributes or {}), p) for p in m.data.data_points]
        return out

    def total(self, name: str, **attrs: str) -> int:
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        return sum(
            int(getattr(p, "value", getattr(p, "count", 0)))
            for a, p in self.points(name)
            if all(a.get(k) == v for k, v in want.items())
        )


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Fresh SDK providers per test; nothing is set globally."""
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    yield Otel(tp, spans, mp, reader)
    tp.shutdown()
    mp.shutdown()


def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Reads new-checkout twice and checkout-button once; /raise and /500 fail only for on."""
    f = environ["rampup.flags"]
    path = environ["PATH_INFO"]
    if path == "/child":  # the first flag read happens inside a span the view opened
        with environ["test.tracer"].start_as_current_span("child"):
            f.variant("dark-mode")
    on = f.enabled("new-checkout")
    f.enabled("new-checkout")
    f.variant("checkout-button")
    if on and path == "/raise":
        raise RuntimeError("the new checkout is broken")
    if path == "/outbound":
        headers: dict[str, str] = {}
        propagate.inject(headers)
        environ["test.outbound"] = headers
    status = "500 Internal Server Error" if on and path == "/500" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"on" if on else b"off"]


def wsgi_stack(otel: Otel, telemetry: RampupTelemetry, app: Any = view, **options: Any) -> Any:
    """OpenTelemetry outermost, rampup inside it: the documented order."""
    options.setdefault("user_header", "X-User")
    inner = RampupMiddleware(app, flags=SNAPSHOT, listeners=[telemetry], watch=False, **options)
    return OtelWSGI(inner, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)


def get(
    app: Any,
    path: str = "/",
    user: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[str, bytes, dict[str, Any]]:
    """One request through a WSGI app; returns (status, body, environ). Re-raises app errors."""
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO(), **extra}
    setup_testing_defaults(environ)
    if user is not None:
        environ["HTTP_X_USER"] = user
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: list[str] = []
    body = app(environ, lambda status, hdrs, exc_info=None: seen.append(status))
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen[-1], data, environ


def events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "feature_flag.evaluation"]


# -- trace tagging ---------------------------------------------------------------------------
def test_wsgi_server_span_carries_one_event_per_flag(otel: Otel) -> None:
    """Through the real OTel WSGI middleware, the server span gets one semconv event per flag
    read (not per read call), with the variant served and no deprecated attribute names."""
    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider))
    get(app, user="on-1")
    get(app, user="someone")
    first, second = otel.server_spans()
    assert events(first) == [
        {
            "feature_flag.key": "new-checkout",
            "feature_flag.result.variant": "on",
            "feature_flag.result.reason": "targeting_match",
            "feature_flag.provider.name": "rampup",
        },
        {
            "feature_flag.key": "checkout-button",
            "feature_flag.result.variant": "blue",
            "feature_flag.result.reason": "default",
            "feature_flag.provider.name": "rampup",
        },
    ]
    assert [e["feature_flag.result.variant"] for e in events(second)] == ["off", "blue"]
    for e in events(first) + events(second):
        assert "feature_flag.variant" not in e
        assert "feature_flag.provider_name" not in e
        assert "feature_flag.context.id" not in e  # opt-in only


def test_asgi_server_span_carries_one_event_per_flag(otel: Otel) -> None:
    """Starlette with rampup.asgi inside the real OTel ASGI middleware: the SERVER span has the
    events, with the variant each user was served."""
    pytest.importorskip("starlette")
    httpx = pytest.importorskip("httpx")
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelASGI
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rampup.asgi import RampupMiddleware as RampupASGI

    async def home(request: Request) -> PlainTextResponse:
        f = request.state.flags
        f.variant("checkout-button")
        return PlainTextResponse("on" if f.enabled("new-checkout") else "off")

    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    app = Starlette(
        routes=[Route("/", home)],
        middleware=[
            Middleware(
                RampupASGI, flags=SNAPSHOT, listeners=[tel], user_header="X-User", watch=False
            )
        ],
    )
    wrapped = OtelASGI(
        app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )

    async def send() -> list[str]:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [
                (await client.get("/", headers={"X-User": user})).text
                for user in ("on-2", "nobody")
            ]

    assert asyncio.run(send()) == ["on", "off"]
    spans = otel.server_spans()
    assert [
        [(e["feature_flag.key"], e["feature_flag.result.variant"]) for e in events(s)]
        for s in spans
    ] == [
        [("checkout-button", "blue"), ("new-checkout", "on")],
        [("checkout-button", "blue"), ("new-checkout", "off")],
    ]
    assert otel.total("rampup.requests", feature_flag__result__variant="on") == 1


def _flask_app(telemetry: RampupTelemetry) -> Any:
    pytest.importorskip("flask")
    import flask

    from rampup.flask import Rampup

    app = flask.Flask(__name__)

    @app.get("/")
    def home() -> str:
        rampup.flags.variant("checkout-button")
        return "on" if rampup.flags.enabled("new-checkout") else "off"

    Rampup(app, flags=SNAPSHOT, user_header="X-User", listeners=[telemetry], watch=False)
    return app


def test_flask_with_otel_wsgi_middleware_outermost(otel: Otel) -> None:
    """Flask: Rampup(app) first, then app.wsgi_app wrapped in OTel's WSGI middleware (so it is
    outermost): the server span carries the events and the outcomes are counted."""
    app = _flask_app(RampupTelemetry(meter_provider=otel.meter_provider))
    app.wsgi_app = OtelWSGI(
        app.wsgi_app, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    client = app.test_client()
    assert client.get("/", headers={"X-User": "on-1"}).text == "on"
    assert client.get("/", headers={"X-User": "x"}).text == "off"
    spans = otel.server_spans()
    assert [[e["feature_flag.result.variant"] for e in events(s)] for s in spans] == [
        ["blue", "on"],
        ["blue", "off"],
    ]
    assert error_rates(otel.reader, "new-checkout") == {
        "off": VariantOutcome(1, 0),
        "on": VariantOutcome(1, 0),
    }


def test_flask_span_started_in_before_request_is_found(otel: Otel) -> None:
    """A server span that starts after rampup opened the request, in before_request (as
    opentelemetry-instrumentation-flask does), is the one tagged: the span current at the
    first flag read."""
    app = _flask_app(RampupTelemetry())
    tracer = otel.tracer_provider.get_tracer("flask-like")
    import flask

    def start_span() -> None:
        span = tracer.start_span("GET /", kind=trace.SpanKind.SERVER)
        flask.g.otel = (span, context.attach(trace.set_span_in_context(span)))

    def end_span(exc: BaseException | None) -> None:
        span, token = flask.g.otel
        context.detach(token)
        span.end()

    app.before_request(start_span)
    app.teardown_request(end_span)

    assert app.test_client().get("/", headers={"X-User": "on-1"}).text == "on"
    (span,) = otel.server_spans()
    assert [e["feature_flag.key"] for e in events(span)] == ["checkout-button", "new-checkout"]


def test_rampup_outside_otel_still_tags_the_server_span(otel: Otel) -> None:
    """The wrong order (rampup wrapping OTel) still lands the events on the server span: with
    no span at request start, the span current at the first flag read is used."""
    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    otel_inner = OtelWSGI(view, tracer_provider=otel.tracer_provider)
    app = RampupMiddleware(otel_inner, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    get(app, user="on-0")
    (span,) = otel.server_spans()
    assert [e["feature_flag.key"] for e in events(span)] == ["new-checkout", "checkout-button"]


def test_events_go_to_the_server_span_not_a_child_span(otel: Otel) -> None:
    """A flag first read inside a child span the view opened is still recorded on the server
    span captured at request start, so all of a request's variants are in one place."""
    app = wsgi_stack(otel, RampupTelemetry())
    extra: dict[str, Any] = {"test.tracer": otel.tracer_provider.get_tracer("app")}
    get(app, path="/child", user="on-1", **extra)
    (server,) = otel.server_spans()
    child = next(s for s in otel.spans.get_finished_spans() if s.name == "child")
    assert [e["feature_flag.key"] for e in events(server)] == [
        "dark-mode",
        "new-checkout",
        "checkout-button",
    ]
    assert events(child) == []


def test_attributes_mode_sets_one_attribute_per_flag(otel: Otel) -> None:
    """mode="attributes": feature_flag.rampup.<key> = variant on the server span, no events."""
    app = wsgi_stack(otel, RampupTelemetry(mode="attributes"))
    get(app, user="on-3")
    (span,) = otel.server_spans()
    attrs = dict(span.attributes or {})
    assert attrs["feature_flag.rampup.new-checkout"] == "on"
    assert attrs["feature_flag.rampup.checkout-button"] == "blue"
    assert events(span) == []


def test_both_and_off_modes(otel: Otel) -> None:
    """mode="both" writes events and attributes; mode="off" touches no span but still counts."""
    get(wsgi_stack(otel, RampupTelemetry(mode="both")), user="on-1")
    off = RampupTelemetry(mode="off", meter_provider=otel.meter_provider)
    get(wsgi_stack(otel, off), user="on-1")
    both, silent = otel.server_spans()
    assert len(events(both)) == 2
    assert "feature_flag.rampup.new-checkout" in (both.attributes or {})
    assert events(silent) == []
    assert not any(k.startswith("feature_flag") for k in (silent.attributes or {}))
    assert otel.total("feature_flag.evaluations") == 2


@pytest.mark.parametrize(
    ("how", "expected"),
    [("raw", "on-2"), ("hash", hashlib.sha256(b"on-2").hexdigest()[:16])],
)
def test_context_id_is_opt_in_raw_or_hashed(otel: Otel, how: str, expected: str) -> None:
    """context_id="raw" adds the subject key; "hash" adds a 16-hex-digit SHA-256 prefix."""
    get(wsgi_stack(otel, RampupTelemetry(context_id=how)), user="on-2")
    (span,) = otel.server_spans()
    assert {e["feature_flag.context.id"] for e in events(span)} == {expected}


def test_non_recording_span_is_left_alone(otel: Otel) -> None:
    """With a sampler that records nothing, no event is added, but metrics are still counted."""
    tp = TracerProvider(sampler=ALWAYS_OFF)
    tp.add_span_processor(SimpleSpanProcessor(otel.spans))
    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    inner = RampupMiddleware(view, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    get(OtelWSGI(inner, tracer_provider=tp), user="on-0")
    assert otel.spans.get_finished_spans() == ()
    assert otel.total("rampup.requests", feature_flag__key="new-checkout") == 1


def test_suppressed_instrumentation_records_nothing(otel: Otel) -> None:
    """Inside suppress_instrumentation (is_instrumentation_enabled() is False) rampup records
    no event and no metric for the request."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    app = RampupMiddleware(view, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("outer"), suppress_instrumentation():
        status, _, _ = get(app, user="on-1")
    assert status == "200 OK"
    (outer,) = otel.spans.get_finished_spans()
    assert events(outer) == []
    assert otel.points("feature_flag.evaluations") == []
    assert otel.points("rampup.requests") == []


def test_flags_outside_a_request_tag_the_current_span(otel: Otel) -> None:
    """A Flags built by hand (a background job) with the listener records on the current span
    and counts the evaluation; there is no request, so no outcome metric."""
    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    with otel.tracer_provider.get_tracer("job").start_as_current_span("job"):
        f = Flags(SNAPSHOT, Subject("on-0"), listeners=(tel,))
        assert f.enabled("new-checkout")
    (span,) = otel.spans.get_finished_spans()
    assert [e["feature_flag.result.variant"] for e in events(span)] == ["on"]
    assert otel.total("feature_flag.evaluations", feature_flag__key="new-checkout") == 1
    assert otel.points("rampup.requests") == []


def test_unknown_flag_is_an_error_reason_with_flag_not_found(otel: Otel) -> None:
    """Reading a flag missing from the file records reason "error" and error.type
    "flag_not_found", without a variant, and gives it no outcome metric."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["rampup.flags"].enabled("no-such-flag")
        start_response("200 OK", [])
        return [b""]

    get(wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider), app=app))
    (span,) = otel.server_spans()
    (event,) = events(span)
    assert event["feature_flag.result.reason"] == "error"
    assert event["error.type"] == "flag_not_found"
    assert "feature_flag.result.variant" not in event
    assert otel.points("rampup.requests") == []


def test_event_logs_emit_log_based_events_linked_to_the_span(otel: Otel) -> None:
    """event_logs=True also emits feature_flag.evaluation through the logs API, carrying the
    server span's trace and span ids."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as log_export

    if not hasattr(log_export, "InMemoryLogRecordExporter"):  # tox tests-min: SDK < 1.28
        pytest.skip("this opentelemetry-sdk has no in-memory log exporter")
    InMemoryLogRecordExporter = log_export.InMemoryLogRecordExporter
    SimpleLogRecordProcessor = log_export.SimpleLogRecordProcessor

    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    get(wsgi_stack(otel, RampupTelemetry(event_logs=True, logger_provider=lp)), user="on-1")
    (span,) = otel.server_spans()
    records = [r.log_record for r in logs.get_finished_logs()]
    assert [r.event_name for r in records] == ["feature_flag.evaluation"] * 2
    assert [dict(r.attributes or {})["feature_flag.key"] for r in records] == [
        "new-checkout",
        "checkout-button",
    ]
    assert {(r.trace_id, r.span_id) for r in records} == {
        (span.context.trace_id, span.context.span_id)
    }
    lp.shutdown()


# -- metrics -----------------------------------------------------------------------------
def test_metrics_per_variant_add_up_to_the_requests_sent(otel: Otel) -> None:
    """Every request is counted once per flag it was served, under the variant it got; the
    counts per variant add up to the requests sent; evaluations count flags, not read calls."""
    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider))
    users = [*ON_USERS[:3], *(f"user-{i}" for i in range(7))]
    for user in users:
        get(app, user=user)
    on = otel.total(
        "rampup.requests", feature_flag__key="new-checkout", feature_flag__result__variant="on"
    )
    off = otel.total(
        "rampup.requests", feature_flag__key="new-checkout", feature_flag__result__variant="off"
    )
    assert (on, off) == (3, 7)
    assert otel.total("rampup.requests", feature_flag__key="checkout-button") == len(users)
    assert otel.total("rampup.request.duration", feature_flag__key="new-checkout") == len(users)
    assert otel.total("rampup.request.errors") == 0
    assert otel.total("feature_flag.evaluations", feature_flag__key="new-checkout") == len(users)
    assert (
        otel.total(
            "feature_flag.evaluations",
            feature_flag__key="new-checkout",
            feature_flag__result__reason="targeting_match",
        )
        == 3
    )
    for attrs, _ in otel.points("rampup.requests"):
        assert set(attrs) == {
            "feature_flag.key",
            "feature_flag.result.variant",
            "http.response.status_class",
        }
        assert attrs["http.response.status_class"] == "2xx"


def test_duration_histogram_is_in_seconds(otel: Otel) -> None:
    """The duration is recorded in seconds, with second-scale bucket boundaries."""

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["rampup.flags"].enabled("dark-mode")
        time.sleep(0.02)
        start_response("200 OK", [])
        return [b""]

    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider), app=slow)
    t0 = time.perf_counter()
    get(app)
    elapsed = time.perf_counter() - t0
    ((attrs, point),) = otel.points("rampup.request.duration")
    assert attrs["feature_flag.result.variant"] == "on"
    assert 0.02 <= point.sum <= elapsed  # seconds: in milliseconds it would be >= 20
    if _sdk_version() >= (1, 28):  # older SDKs ignore bucket advice (configure a View)
        assert 0.025 in point.explicit_bounds


def _sdk_version() -> tuple[int, ...]:
    from opentelemetry.sdk.version import __version__

    return tuple(int(x) for x in __version__.split(".")[:2] if x.isdigit())


def test_errors_are_counted_on_the_variant_that_raised(otel: Otel) -> None:
    """A view that raises only for new-checkout=on: errors land on "on" only, and
    error_rates() answers "is on worse than off?" from the metric data alone."""
    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider))
    for user in [*ON_USERS, *(f"user-{i}" for i in range(6))]:
        try:
            get(app, path="/raise", user=user)
        except RuntimeError:
            assert user in ON_USERS
    rates = error_rates(otel.reader, "new-checkout")
    assert rates == {"off": VariantOutcome(6, 0), "on": VariantOutcome(4, 4)}
    assert rates["on"].error_rate == 1.0 > rates["off"].error_rate == 0.0
    assert otel.total("rampup.request.errors", http__response__status_class="5xx") == 8
    # checkout-button=blue was served to every request, so it carries the same 4 errors
    assert error_rates(otel.reader.get_metrics_data(), "checkout-button") == {
        "blue": VariantOutcome(10, 4)
    }


def test_a_500_response_is_an_error_of_its_variant(otel: Otel) -> None:
    """A 5xx response (no exception) counts as an error of the variant served, class 5xx."""
    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider))
    for user in ["on-0", "on-1", "x", "y", "z"]:
        get(app, path="/500", user=user)
    assert error_rates(otel.reader, "new-checkout") == {
        "off": VariantOutcome(3, 0),
        "on": VariantOutcome(2, 2),
    }
    assert (
        otel.total(
            "rampup.requests", http__response__status_class="5xx", feature_flag__key="new-checkout"
        )
        == 2
    )


def test_outcome_flags_and_the_cap_bound_outcome_metrics(otel: Otel) -> None:
    """outcome_flags limits outcome metrics to the listed flags; max_outcome_flags caps how
    many flags of one request get them (the first ones decided)."""
    listed = RampupTelemetry(meter_provider=otel.meter_provider, outcome_flags=["checkout-button"])
    get(wsgi_stack(otel, listed), user="on-0")
    assert {a["feature_flag.key"] for a, _ in otel.points("rampup.requests")} == {"checkout-button"}
    mp2 = MeterProvider(metric_readers=[reader2 := InMemoryMetricReader()])
    capped = RampupTelemetry(meter_provider=mp2, max_outcome_flags=1)
    get(wsgi_stack(otel, capped), user="on-0")
    other = Otel(otel.tracer_provider, otel.spans, mp2, reader2)
    assert {a["feature_flag.key"] for a, _ in other.points("rampup.requests")} == {"new-checkout"}
    assert other.total("feature_flag.evaluations") == 2  # evaluations are not capped
    mp2.shutdown()


def test_overridden_requests_get_no_outcome_metrics(otel: Otel) -> None:
    """A QA override is counted as an evaluation with reason "override" but kept out of the
    per-variant outcomes, so testers forcing a variant do not skew its error rate."""
    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    app = wsgi_stack(otel, tel, overrides="open", debug=True)
    get(app, user="user-1", headers={"X-Rampup-Override": "new-checkout=on"})
    assert (
        otel.total(
            "feature_flag.evaluations",
            feature_flag__key="new-checkout",
            feature_flag__result__reason="override",
        )
        == 1
    )
    assert otel.total("rampup.requests", feature_flag__key="new-checkout") == 0
    assert otel.total("rampup.requests", feature_flag__key="checkout-button") == 1


def test_error_rates_of_an_unknown_flag_is_empty() -> None:
    """error_rates() on data without that flag, or with no data at all, returns {}."""
    assert error_rates(None, "new-checkout") == {}
    assert VariantOutcome().error_rate == 0.0


# -- baggage -----------------------------------------------------------------------------
def _downstream(**options: Any) -> Any:
    """A second service running rampup that reads overrides from incoming baggage."""
    return RampupMiddleware(
        view, flags=SNAPSHOT, override_baggage=True, user_header="X-User", watch=False, **options
    )


def test_decisions_in_baggage_make_downstream_serve_the_same_variants(otel: Otel) -> None:
    """baggage="decisions": an outgoing call instrumented with the real W3C propagator carries
    rampup.override; a downstream service (override_baggage=True, policy open) honours it."""
    app = wsgi_stack(otel, RampupTelemetry(baggage="decisions"))
    _, _, environ = get(app, path="/outbound", user="on-1")
    outbound = environ["test.outbound"]
    assert "rampup.override=" in outbound["baggage"]
    assert "traceparent" in outbound
    carried = baggage.get_baggage("rampup.override", propagate.extract(outbound))
    assert carried == "new-checkout=on,checkout-button=blue"
    # downstream: an anonymous user, who would get "off" on their own
    assert get(_downstream(overrides="open"), path="/", headers=outbound)[1] == b"on"
    assert get(_downstream(overrides="open"), path="/")[1] == b"off"
    # the carried value holds variant names only: no subject id travels
    assert "on-1" not in outbound["baggage"]


def test_overrides_mode_carries_only_the_overrides(otel: Otel) -> None:
    """baggage="overrides": only the variants a QA override forced go into the baggage."""
    app = wsgi_stack(otel, RampupTelemetry(baggage="overrides"), overrides="open", debug=True)
    _, _, environ = get(
        app,
        path="/outbound",
        user="user-1",
        headers={"X-Rampup-Override": "new-checkout=on"},
    )
    carried = baggage.get_baggage("rampup.override", propagate.extract(environ["test.outbound"]))
    assert carried == "new-checkout=on"


def test_no_override_means_no_baggage_entry(otel: Otel) -> None:
    """baggage="overrides" without any override adds nothing to the outgoing baggage."""
    app = wsgi_stack(otel, RampupTelemetry(baggage="overrides"))
    _, _, environ = get(app, path="/outbound", user="on-1")
    assert "baggage" not in environ["test.outbound"]


def test_a_signed_override_travels_signed(otel: Otel) -> None:
    """A valid signed token the request carried is forwarded as such, and a downstream that
    accepts only signed overrides (same secret) honours it."""
    token = sign("new-checkout=on", int(time.time()) + 600, "s3cret-0123456789abcdef-0123456789")
    app = wsgi_stack(
        otel,
        RampupTelemetry(baggage="overrides"),
        overrides="signed",
        override_secret="s3cret-0123456789abcdef-0123456789",
    )
    _, body, environ = get(
        app, path="/outbound", user="user-1", headers={"X-Rampup-Override": token}
    )
    assert body == b"on"
    outbound = environ["test.outbound"]
    carried = baggage.get_baggage("rampup.override", propagate.extract(outbound))
    assert isinstance(carried, str)
    assert carried.split(",")[0] == token
    signed_only = _downstream(
        overrides="signed", override_secret="s3cret-0123456789abcdef-0123456789"
    )
    assert get(signed_only, headers=outbound)[1] == b"on"
    assert get(
        _downstream(overrides="signed", override_secret="other-0123456789abcdef-0123456789"),
        headers=outbound,
    )[1] == (b"off")


def test_a_subject_bound_token_is_not_forwarded(otel: Otel) -> None:
    """A token bound to a subject names that subject: it is not forwarded; the plain
    flag=variant entry goes instead."""
    token = sign(
        "new-checkout=on",
        int(time.time()) + 600,
        "s3cret-0123456789abcdef-0123456789",
        subject="user-1",
    )
    app = wsgi_stack(
        otel,
        RampupTelemetry(baggage="overrides"),
        overrides="signed",
        override_secret="s3cret-0123456789abcdef-0123456789",
    )
    _, body, environ = get(
        app, path="/outbound", user="user-1", headers={"X-Rampup-Override": token}
    )
    assert body == b"on"
    carried = baggage.get_baggage("rampup.override", propagate.extract(environ["test.outbound"]))
    assert carried == "new-checkout=on"


def test_upstream_entries_are_kept_and_ours_come_first(otel: Otel) -> None:
    """Entries that arrived in baggage for flags this service never decides are passed on;
    for a flag it decided, its own variant comes first."""
    app = wsgi_stack(otel, RampupTelemetry(baggage="decisions"))
    incoming = {"baggage": "rampup.override=search%3Dfast%2Cnew-checkout%3Doff,other=1"}
    _, _, environ = get(app, path="/outbound", user="on-1", headers=incoming)
    outbound = environ["test.outbound"]
    carried = baggage.get_baggage("rampup.override", propagate.extract(outbound))
    assert carried == "new-checkout=on,checkout-button=blue,search=fast"
    assert baggage.get_baggage("other", propagate.extract(outbound)) == "1"


def test_baggage_does_not_outlive_the_request(otel: Otel) -> None:
    """The context rampup attached for baggage is detached when the request ends (no OTel
    middleware around it, so rampup's own detach is what restores the thread's context)."""
    tel = RampupTelemetry(baggage="decisions")
    app = RampupMiddleware(view, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    before = context.get_current()
    get(app, path="/outbound", user="on-1")
    assert context.get_current() is before
    assert baggage.get_baggage("rampup.override") is None


# -- options and robustness --------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value"),
    [("mode", "spans"), ("context_id", True), ("context_id", "sha1"), ("baggage", "all")],
)
def test_bad_options_are_refused_with_the_choices(option: str, value: Any) -> None:
    """An invalid option raises ValueError naming the allowed values."""
    with pytest.raises(ValueError, match="expected one of"):
        RampupTelemetry(**{option: value})


def test_outcome_flags_must_be_a_list() -> None:
    """outcome_flags="new-checkout" (a string, not a list) is refused."""
    with pytest.raises(ValueError, match="list of flag keys"):
        RampupTelemetry(outcome_flags="new-checkout")


def test_without_an_sdk_requests_work_and_nothing_is_recorded() -> None:
    """With only the API (no SDK provider anywhere) requests are served as usual."""
    tel = RampupTelemetry(mode="both", context_id="hash", baggage="decisions")
    app = RampupMiddleware(view, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    assert get(app, user="on-1")[:2] == ("200 OK", b"on")
    assert get(app, user="x", path="/500")[:2] == ("200 OK", b"off")


class Recorder:
    """Another listener: hears every decision and every end."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ends = 0

    def on_decision(self, flags: Any, decision: Any) -> None:
        self.keys.append(decision.key)

    def on_request_end(self, flags: Any, status: Any, error: Any) -> None:
        self.ends += 1


def test_without_an_sdk_telemetry_leaves_the_request_at_its_first_decision() -> None:
    """With nothing to record, telemetry stops hearing of the request (what keeps it cheap);
    other listeners still hear every decision and the end; alone, the end is not followed."""
    tel = RampupTelemetry()
    after_first: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        f = environ["rampup.flags"]
        f.enabled("new-checkout")
        after_first.append(f.listeners)
        f.variant("checkout-button")
        start_response("200 OK", [])
        return [b"ok"]

    rec = Recorder()
    both = RampupMiddleware(app, flags=SNAPSHOT, listeners=[tel, rec], watch=False)
    assert get(both, user="u1")[1] == b"ok"
    assert after_first[-1] == (rec,)
    assert (rec.keys, rec.ends) == (["new-checkout", "checkout-button"], 1)

    alone = RampupMiddleware(app, flags=SNAPSHOT, listeners=[tel], watch=False)
    environ: dict[str, Any] = {"wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    body = alone(environ, lambda *a: None)
    assert after_first[-1] == ()
    assert type(body) is list  # handed over as is: nobody wants the end


def test_with_an_sdk_telemetry_hears_every_decision(otel: Otel) -> None:
    """The counterpart: with a meter to record to, telemetry stays for the whole request."""
    tel = RampupTelemetry(meter_provider=otel.meter_provider, mode="off")
    app = RampupMiddleware(view, flags=SNAPSHOT, listeners=[tel], user_header="X-User")
    assert get(app, user="on-1")[1] == b"on"
    assert otel.total("feature_flag.evaluations") == 2  # new-checkout, checkout-button
    assert otel.total("rampup.requests", feature_flag__key="new-checkout") == 1


def test_a_failing_meter_never_breaks_the_request(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    """If recording fails inside the listener, the request is served and the failure logged."""

    class Broken:
        def add(self, *a: Any, **k: Any) -> None:
            raise RuntimeError("exporter down")

    tel = RampupTelemetry(meter_provider=otel.meter_provider)
    tel._evals = Broken()  # type: ignore[assignment]
    tel._requests = Broken()  # type: ignore[assignment]
    status, body, _ = get(wsgi_stack(otel, tel), user="on-0")
    assert (status, body) == ("200 OK", b"on")
    assert "listener" in caplog.text


def test_threads_keep_their_own_request_state(otel: Otel) -> None:
    """Concurrent requests in threads each get their own events and outcomes."""
    from concurrent.futures import ThreadPoolExecutor

    app = wsgi_stack(otel, RampupTelemetry(meter_provider=otel.meter_provider))
    users = [f"on-{i % 4}" if i % 2 else f"user-{i}" for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda u: get(app, user=u)[1], users))
    assert bodies.count(b"on") == 20
    for span in otel.server_spans():
        assert len(events(span)) == 2
    assert error_rates(otel.reader, "new-checkout") == {
        "off": VariantOutcome(20, 0),
        "on": VariantOutcome(20, 0),
    }
