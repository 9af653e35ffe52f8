"""Without OpenTelemetry installed, rampup imports and serves requests unchanged, and only
``rampup.telemetry`` says what to install. Run in a subprocess where every ``opentelemetry``
import fails, as it would without the ``otel`` extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoOtel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoOtel())
    """
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_blocker_really_blocks() -> None:
    """Sanity check of the harness: opentelemetry cannot be imported in the subprocess."""
    proc = run(
        """
        try:
            import opentelemetry.trace
        except ImportError:
            print("blocked")
        """
    )
    assert proc.stdout.strip() == "blocked", proc.stderr


def test_rampup_and_its_middleware_work_without_opentelemetry() -> None:
    """rampup, rampup.wsgi and rampup.asgi import, a WSGI and an ASGI request are served with
    flags, and no opentelemetry module was imported along the way."""
    proc = run(
        """
        import asyncio, io
        from wsgiref.util import setup_testing_defaults

        import rampup, rampup.asgi, rampup.wsgi

        FLAGS = {"version": 1, "flags": {"new-checkout": {"default": "on"}}}

        def wsgi_view(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"on" if rampup.flags.enabled("new-checkout") else b"off"]

        app = rampup.wsgi.RampupMiddleware(wsgi_view, flags=FLAGS, watch=False)
        environ = {"wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)
        statuses = []
        body = app(environ, lambda s, h, e=None: statuses.append(s))
        print("wsgi", statuses[0], b"".join(body).decode())
        body.close() if hasattr(body, "close") else None

        async def asgi_view(scope, receive, send):
            on = scope["state"]["flags"].enabled("new-checkout")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"on" if on else b"off"})

        async def call():
            sent = []
            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}
            async def send(message):
                sent.append(message)
            scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
                     "query_string": b"", "scheme": "http", "client": ("127.0.0.1", 1)}
            await rampup.asgi.RampupMiddleware(asgi_view, flags=FLAGS, watch=False)(
                scope, receive, send)
            return sent[0]["status"], sent[-1]["body"].decode()

        print("asgi", *asyncio.run(call()))
        print("otel modules:", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["wsgi 200 OK on", "asgi 200 on", "otel modules: []"]


def test_importing_telemetry_says_what_to_install() -> None:
    """Importing rampup.telemetry raises MissingDependency (an ImportError) with the pip
    command for the extra."""
    proc = run(
        """
        import rampup
        try:
            import rampup.telemetry
        except rampup.MissingDependency as exc:
            print(type(exc).__name__, isinstance(exc, ImportError))
            print(exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    kind, message = proc.stdout.strip().splitlines()
    assert kind == "MissingDependency True"
    assert 'pip install "rampup[otel]"' in message


def test_auto_telemetry_without_the_api_counts_outcomes_and_imports_nothing() -> None:
    """telemetry="auto" (the default) without opentelemetry-api: only the outcome book's
    recorder is installed, the book counts, no opentelemetry module is imported; asking for
    telemetry="on" says what to install."""
    proc = run(
        """
        import io, sys
        from wsgiref.util import setup_testing_defaults

        import rampup, rampup.outcomes, rampup.wsgi

        FLAGS = {"flags": {"split": {"rules": [{"split": {"on": 50, "off": 50}}]}}}

        def view(environ, start_response):
            environ["rampup.flags"].variant("split")
            start_response("200 OK", [])
            return [b""]

        app = rampup.wsgi.RampupMiddleware(view, flags=FLAGS, watch=False, user_header="X-U")
        print([type(x).__name__ for x in app.runtime.all_listeners])
        for i in range(5):
            environ = {"wsgi.input": io.BytesIO(), "HTTP_X_U": f"u{i}"}
            setup_testing_defaults(environ)
            list(app(environ, lambda *a: None))
        print(sum(s.requests for s in rampup.outcomes.book.read("split").values()))
        print("otel modules:", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        try:
            rampup.wsgi.RampupMiddleware(view, flags=FLAGS, watch=False, telemetry="on")
        except rampup.MissingDependency as exc:
            print("on:", "rampup[otel]" in str(exc))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["['OutcomeRecorder']", "5", "otel modules: []", "on: True"]
