"""What the outcome book and RampupTelemetry add per request, through the WSGI middleware.

    python bench/bench_telemetry.py [--requests 20000] [--rounds 7] [--reads 5]

Each row is the median over rounds of the time per request of one configuration; the "added"
column is the difference with the row it is compared to, measured in the same run:

* bare app / rampup middleware with no listener at all (as before the outcome book);
* + a no-op listener told of each request's end (the machinery the book rides on);
* + the outcome book alone (``telemetry=False``): target <= 1 us with 5 flags read;
* + telemetry with only opentelemetry-api (``telemetry="auto"``, no SDK: no-op providers),
  compared with the book alone: target <= 1 us (with nothing to record it leaves the request);
* inside an SDK server span (TracerProvider with a BatchSpanProcessor and an in-memory
  exporter; MeterProvider with an InMemoryMetricReader): the book alone, then the telemetry
  BEFORE this change (``bench/_telemetry_before.py``: a counter add, a histogram record and a
  span event per flag per request) and AFTER (outcomes observed from the book, span
  events), each compared with the book alone in a span: target <= 25 us with 5 flags read;
  and AFTER with ``mode="attributes"`` (a span attribute per flag): the measurement behind
  the span-mode choice (docs/telemetry.md).

Numbers move with the machine and its load; compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

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


class NoopEnd:
    """A listener told of each decision and each request's end that does nothing: the
    listener machinery the outcome book's recorder rides on, without the book's own work."""

    hears_decisions = False  # like the recorder: only the end

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reads", type=int, default=5, choices=range(6), help="flags read")
    args = parser.parse_args()

    import rampup._request
    from rampup.telemetry import RampupTelemetry

    snapshot = rampup.load(FLAGS)
    app = make_app(args.reads)
    opts: dict[str, Any] = {"user_header": "X-User", "watch": False}
    # "no listener at all": the middleware as it was before every request fed the book
    listeners_for = rampup._request.listeners_for
    rampup._request.listeners_for = lambda telemetry, listeners: tuple(listeners)  # type: ignore[assignment]
    bare_mw = RampupMiddleware(app, flags=snapshot, **opts)
    noop_mw = RampupMiddleware(app, flags=snapshot, listeners=[NoopEnd()], **opts)
    rampup._request.listeners_for = listeners_for
    configs: dict[str, tuple[Any, Any]] = {
        "bare app": (app, None),
        "middleware": (bare_mw, None),
        "+ no-op end listener": (noop_mw, None),
        "+ outcome book": (RampupMiddleware(app, flags=snapshot, telemetry=False, **opts), None),
        "+ book + telemetry, API only": (RampupMiddleware(app, flags=snapshot, **opts), None),
    }
    sdk = True
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        sdk = False
    if sdk:
        from _telemetry_before import RampupTelemetry as TelemetryBefore

        # Providers are passed explicitly; nothing global is set, so the rows above stay API-only.
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        tracer = tp.get_tracer("bench")

        def span() -> Any:
            exporter.clear()  # keep memory flat
            return tracer.start_as_current_span("GET /")

        before = TelemetryBefore(meter_provider=mp)
        after = RampupTelemetry(meter_provider=mp)
        configs["SDK span, + outcome book"] = (
            RampupMiddleware(app, flags=snapshot, telemetry=False, **opts),
            span,
        )
        configs["SDK span, + telemetry BEFORE"] = (
            RampupMiddleware(app, flags=snapshot, telemetry=before, **opts),
            span,
        )
        configs["SDK span, + telemetry AFTER"] = (
            RampupMiddleware(app, flags=snapshot, telemetry=after, **opts),
            span,
        )
        # the span mode's measurement: span attributes instead of events
        attributes = RampupTelemetry(meter_provider=mp, mode="attributes")
        configs["SDK span, + AFTER, attributes"] = (
            RampupMiddleware(app, flags=snapshot, telemetry=attributes, **opts),
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
        "+ no-op end listener": "middleware",
        "+ outcome book": "middleware",
        "+ book + telemetry, API only": "+ outcome book",
        "SDK span, + telemetry BEFORE": "SDK span, + outcome book",
        "SDK span, + telemetry AFTER": "SDK span, + outcome book",
        "SDK span, + AFTER, attributes": "SDK span, + outcome book",
    }
    targets = {
        "+ outcome book": "   target <= 1.00",
        "+ book + telemetry, API only": "   target <= 1.00",
        "SDK span, + telemetry AFTER": "   target <= 25.00",
    }
    for name, us in med.items():
        base = compare.get(name)
        line = f"  {name:28s} {us:7.2f} ({best[name]:6.2f})"
        if base:
            line += (
                f"  added {us - med[base]:5.2f} ({best[name] - best[base]:5.2f})"
                f" vs {base!r}{targets.get(name, '')}"
            )
        print(line)
    own = med["+ outcome book"] - med["+ no-op end listener"]
    print(f"  the book's own work (book - no-op end listener): {own:.2f} us")
    if not sdk:
        print("  (opentelemetry-sdk not installed: SDK rows skipped)")
    else:
        b, a = "SDK span, + telemetry BEFORE", "SDK span, + telemetry AFTER"
        base = med["SDK span, + outcome book"]
        ratio = (med[b] - base) / max(med[a] - base, 1e-9)
        print(
            f"  telemetry with the SDK: added {med[b] - base:.1f} us before, "
            f"{med[a] - base:.1f} us after ({ratio:.1f}x less)"
        )
        mp.shutdown()
        tp.shutdown()


if __name__ == "__main__":
    main()
