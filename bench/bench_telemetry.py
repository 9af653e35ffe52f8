"""What RampupTelemetry adds per request, through the WSGI middleware, in-process.

    python bench/bench_telemetry.py [--requests 20000] [--rounds 7] [--reads 1]

Each row is the median over rounds of the time per request of one configuration; the "added"
column is the difference with the row it is compared to, measured in the same run:

* bare app / rampup middleware without listeners / with a listener that does nothing and
  always wants the response's end (following the body to its end is the adapter's cost);
* + RampupTelemetry with only opentelemetry-api (no SDK: no-op providers), compared with the
  middleware without listeners, so everything turning telemetry on costs: target <= 1 us
  (with nothing to record it tells the adapter it needs no end: ``wants_end``);
* the same two inside an SDK server span, with an SDK MeterProvider (InMemoryMetricReader)
  and an in-memory span exporter: the cost of really recording events and metrics.

Numbers move with the machine and its load; compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import rampup
from rampup.wsgi import RampupMiddleware

FLAGS = {
    "version": 1,
    "flags": {
        f"flag-{i}": {
            "default": "off",
            "rules": [
                {"conditions": [{"attribute": "key", "op": "in", "value": ["u1"]}], "serve": "on"}
            ],
        }
        for i in range(5)
    },
}
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_X_USER": "u1",
    "wsgi.url_scheme": "http",
}


def make_app(reads: int) -> Callable[..., Iterable[bytes]]:
    keys = [f"flag-{i}" for i in range(reads)]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        f = environ.get("rampup.flags")
        if f is not None:
            for k in keys:
                f.enabled(k)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


class NoopListener:
    """A listener that does nothing: what the middleware costs once any listener is set."""

    def on_request_start(self, flags: Any) -> None:
        pass

    def on_decision(self, flags: Any, decision: Any) -> None:
        pass

    def on_request_end(self, flags: Any, status: Any, error: Any) -> None:
        pass


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def per_request(app: Callable[..., Iterable[bytes]], n: int, wrap: Any = None) -> float:
    """Seconds per request for ``n`` requests (each inside ``wrap()`` when given)."""
    t0 = time.perf_counter()
    for _ in range(n):
        if wrap is None:
            body = app(dict(ENVIRON), _start_response)
        else:
            with wrap():
                body = app(dict(ENVIRON), _start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=1, choices=range(6), help="flags read")
    args = parser.parse_args()

    from rampup.telemetry import RampupTelemetry

    snapshot = rampup.load(FLAGS)
    app = make_app(args.reads)
    opts: dict[str, Any] = {"user_header": "X-User", "watch": False}
    configs: dict[str, tuple[Any, Any]] = {
        "bare app": (app, None),
        "middleware": (RampupMiddleware(app, flags=snapshot, **opts), None),
        "+ no-op listener": (
            RampupMiddleware(app, flags=snapshot, listeners=[NoopListener()], **opts),
            None,
        ),
        "+ telemetry, API only": (
            RampupMiddleware(app, flags=snapshot, listeners=[RampupTelemetry()], **opts),
            None,
        ),
    }
    sdk = True
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        sdk = False
    if sdk:
        # Providers are passed explicitly; nothing global is set, so the rows above stay API-only.
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
        tracer = tp.get_tracer("bench")

        def span() -> Any:
            exporter.clear()  # keep memory flat
            return tracer.start_as_current_span("GET /")

        tel = RampupTelemetry(meter_provider=mp)
        configs["SDK span, no-op listener"] = (
            RampupMiddleware(app, flags=snapshot, listeners=[NoopListener()], **opts),
            span,
        )
        configs["SDK span, + telemetry (SDK)"] = (
            RampupMiddleware(app, flags=snapshot, listeners=[tel], **opts),
            span,
        )

    samples: dict[str, list[float]] = {name: [] for name in configs}
    for wsgi, wrap in configs.values():  # warm up
        per_request(wsgi, min(2000, args.requests), wrap)
    for _ in range(args.rounds):  # interleaved, so load changes hit every row alike
        for name, (wsgi, wrap) in configs.items():
            n = args.requests if wrap is None else max(1, args.requests // 4)
            samples[name].append(per_request(wsgi, n, wrap))
    med = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
    best = {name: min(v) * 1e6 for name, v in samples.items()}

    print(
        f"{args.reads} flag read(s) per request, {args.rounds} rounds; us per request, "
        "median (and best) round"
    )
    compare = {
        "middleware": "bare app",
        "+ no-op listener": "middleware",
        # what turning telemetry on costs: against the same middleware with no listener
        "+ telemetry, API only": "middleware",
        "SDK span, + telemetry (SDK)": "SDK span, no-op listener",
    }
    targets = {"+ telemetry, API only": "   target <= 1.00"}
    for name, us in med.items():
        base = compare.get(name)
        line = f"  {name:28s} {us:7.2f} ({best[name]:6.2f})"
        if base:
            line += (
                f"  added {us - med[base]:5.2f} ({best[name] - best[base]:5.2f})"
                f" vs {base!r}{targets.get(name, '')}"
            )
        print(line)
    if not sdk:
        print("  (opentelemetry-sdk not installed: SDK rows skipped)")


if __name__ == "__main__":
    main()
