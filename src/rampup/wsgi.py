"""WSGI middleware: ``app = RampupMiddleware(app, flags="flags.toml")``.

Binds a per-request :class:`~rampup.Flags` as ``rampup.flags`` and ``environ["rampup.flags"]``
while the app runs, and again while the response body is produced and closed, so streaming
bodies can read flags. Translates only: the request lifecycle is :mod:`rampup.lifecycle`.
The Flask adapter is built on this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .lifecycle import RequestFlags, Runtime, bind, unbind
from .options import Options, OptionsDict
from .subject import MAX_HEADER, environ_key, find_cookie

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ENVIRON_KEY", "RampupMiddleware", "WSGIView", "flags_of"]

ENVIRON_KEY = "rampup.flags"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIView:
    """A :class:`~rampup.subject.RequestView` over a WSGI environ; parses on demand."""

    __slots__ = ("_query", "environ")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._query: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """The header's value from the environ, or None if absent or oversized."""
        value: str | None = self.environ.get(environ_key(name))
        return value if value is None or len(value) <= MAX_HEADER else None

    def cookie(self, name: str) -> str | None:
        """The cookie's value from ``HTTP_COOKIE``, or None."""
        return find_cookie(self.environ.get("HTTP_COOKIE"), name)

    def query(self, name: str) -> str | None:
        """The query parameter's value, or None (only the first 8 KB are parsed)."""
        q = self._query
        if q is None:
            from urllib.parse import parse_qsl

            raw = self.environ.get("QUERY_STRING", "")
            q = self._query = dict(parse_qsl(raw[:8192], keep_blank_values=True)) if raw else {}
        return q.get(name)

    @property
    def path(self) -> str:
        """The request path: ``SCRIPT_NAME`` + ``PATH_INFO``."""
        return str(self.environ.get("SCRIPT_NAME", "")) + str(self.environ.get("PATH_INFO", ""))

    @property
    def method(self) -> str:
        """The HTTP method (``REQUEST_METHOD``)."""
        return str(self.environ.get("REQUEST_METHOD", "GET"))

    @property
    def host(self) -> str:
        """The Host header, else ``SERVER_NAME``."""
        return str(self.environ.get("HTTP_HOST") or self.environ.get("SERVER_NAME", ""))

    @property
    def client_ip(self) -> str | None:
        """The client's address (``REMOTE_ADDR``), or None."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def scheme(self) -> str:
        """The URL scheme (``wsgi.url_scheme``)."""
        return str(self.environ.get("wsgi.url_scheme", "http"))


class RampupMiddleware:
    """Wrap any WSGI app: ``app = RampupMiddleware(app, flags="flags.toml", **options)``.

    ``flags`` is a flag file path (hot-reloaded), a mapping, a Snapshot or a source; options
    are the fields of :class:`rampup.Options` (``user_header=``, ``cookie_name=``, ...).
    """

    __slots__ = ("app", "runtime")

    def __init__(self, app: WSGIApp, /, flags: Any = None, **options: Unpack[OptionsDict]) -> None:
        self.app = app
        self.runtime = Runtime(flags, Options.from_options(options))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if ENVIRON_KEY in environ:  # nested rampup middleware: the outer one already did it
            return self.app(environ, start_response)
        runtime = self.runtime
        f = environ[ENVIRON_KEY] = runtime.open(environ, WSGIView)
        status: list[str] = []  # the status lines started, for listeners

        def _start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            extra = runtime.headers(f)
            if extra is not None:
                headers = [*headers, *extra.pairs()]
            status.append(status_line)
            if exc_info is None:
                return start_response(status_line, headers)
            return start_response(status_line, headers, exc_info)

        token = bind(f)
        try:
            body = self.app(environ, _start_response)
        except BaseException as exc:
            runtime.finish(f, _code(status), exc)
            _forget(environ, f)
            raise
        finally:
            unbind(token)
        # e.g. telemetry with nothing recorded for this request needs no end
        wanted = runtime.wants_end(f)
        if wanted or not (type(body) is list or _is_file(body, environ)):
            stream = _stream(body, f, environ, runtime if wanted else None, status)
            next(stream)  # started, so that a close() before iterating still runs its finally
            return stream
        # Already produced (a list), or a file the server may sendfile(): no app code runs
        # while it is sent, so it is handed over as is.
        _forget(environ, f)
        return body


def _stream(
    body: Iterable[bytes],
    f: RequestFlags,
    environ: dict[str, Any],
    runtime: Runtime | None,
    status: list[str],
) -> Iterator[bytes]:
    """The app's body, chunk for chunk, with the request's Flags bound while app code runs
    (each chunk, and ``close()``) as Flask's ``stream_with_context`` does; the request ends
    when the body is exhausted or closed, as in OpenTelemetry's WSGI instrumentation.

    Binding per step, not from ``__call__`` until ``close()``, means a server that never
    closes the body, or iterates it in another thread, cannot leak one request's flags into
    the next. The first ``yield`` is the middleware's own (see ``__call__``).
    """
    error: BaseException | None = None
    try:
        yield b""
        token = bind(f)
        try:
            chunks = iter(body)
        finally:
            unbind(token)
        while True:
            token = bind(f)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                unbind(token)
            yield chunk
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            token = bind(f)
            try:
                close()
            finally:
                unbind(token)
                _end(f, environ, runtime, status, error)
        else:
            _end(f, environ, runtime, status, error)


def _end(
    f: RequestFlags,
    environ: dict[str, Any],
    runtime: Runtime | None,
    status: list[str],
    error: BaseException | None,
) -> None:
    if runtime is not None:  # a listener wants this request's end
        runtime.finish(f, _code(status), error)
    _forget(environ, f)


def _forget(environ: dict[str, Any], f: RequestFlags) -> None:
    """Drop the environ's reference to its request's Flags (which refer to the environ): a
    request must not end as a reference cycle, which only the garbage collector frees."""
    if environ.get(ENVIRON_KEY) is f:
        del environ[ENVIRON_KEY]


def _is_file(body: Iterable[bytes], environ: dict[str, Any]) -> bool:
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(body, wrapper)


def _code(status: list[str]) -> int | None:
    """The status code of the last status line the app started (None: none yet)."""
    try:
        return int(status[-1][:3]) if status else None
    except ValueError:
        return 0


def flags_of(environ: dict[str, Any]) -> RequestFlags | None:
    """The Flags the middleware bound to this environ, if any."""
    f = environ.get(ENVIRON_KEY)
    return f if isinstance(f, RequestFlags) else None
