"""rampup with OpenTelemetry: a WSGI app whose server spans carry the variants served.

    pip install "rampup[otel]" opentelemetry-sdk opentelemetry-instrumentation-wsgi
    python examples/otel_app.py            # three requests in-process, spans printed
    python examples/otel_app.py --serve    # http://127.0.0.1:8000/ (curl -H "X-User: alice" ...)

The order matters: OpenTelemetry's middleware is outermost, so its server span is current when
rampup opens the request, and rampup's feature_flag.evaluation events land on that span.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server
from wsgiref.util import setup_testing_defaults

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import rampup
from rampup.telemetry import RampupTelemetry, error_rates
from rampup.wsgi import RampupMiddleware

FLAGS = Path(__file__).with_name("flags.toml")

resource = Resource.create({"service.name": "shop"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
metrics = InMemoryMetricReader()  # in production: a PeriodicExportingMetricReader + OTLP
meter_provider = MeterProvider(resource=resource, metric_readers=[metrics])


def shop(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The app: reads two flags through rampup.flags, like any view would."""
    checkout = "new" if rampup.flags.enabled("new-checkout") else "old"
    button = rampup.flags.variant("checkout-button")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{checkout} checkout, {button} button\n".encode()]


app = OpenTelemetryMiddleware(  # outermost: the server span
    RampupMiddleware(  # inside it: flags, and telemetry on the current span
        shop,
        flags=FLAGS,
        user_header="X-User",
        listeners=[RampupTelemetry(meter_provider=meter_provider)],
    ),
    tracer_provider=tracer_provider,
    meter_provider=meter_provider,
)


def request(user: str) -> str:
    environ: dict[str, Any] = {"HTTP_X_USER": user, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        return b"".join(body).decode()
    finally:
        getattr(body, "close", lambda: None)()


def main() -> None:
    if "--serve" in sys.argv:
        with make_server("127.0.0.1", 8000, app) as server:
            print("serving on http://127.0.0.1:8000/ (Ctrl-C to stop)")
            server.serve_forever()
        return
    for user in ("alice", "bob", "carol"):
        print(f"{user}: {request(user)}", end="")
    print("checkout-button per variant:", error_rates(metrics, "checkout-button"))


if __name__ == "__main__":
    main()
