"""WSGI middleware: ``app = RampupMiddleware(app, flags="flags.toml")``.

Binds a per-request :class:`~rampup.Flags` as ``rampup.flags`` and ``environ["rampup.flags"]``
while the app runs, and again while the response body is produced and closed, so streaming
bodies can read flags.
The Flask adapter is built on this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from types import TracebackType
from typing import Any

from ._request import RequestFlags, Runtime
from .context import Flags, _current
from .engine import Snapshot
from .subject import (
    _ATTRIBUTE_KEYS,
    _ENVIRON_KEYS,
    ViewAttributes,
    attribute_environ_key,
    environ_key,
    find_cookie,
)

__all__ = ["ENVIRON_KEY", "RampupMiddleware", "WSGIView"]

log = logging.getLogger("rampup")

ENVIRON_KEY = "rampup.flags"
#: Bound when opening a request failed (e.g. a custom source raised): every flag reads as
#: unknown (off), so a view that reads flags still gets its own response, never a 500.
_FALLBACK = Snapshot.build({}, {}, "<rampup unavailable>")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIView(ViewAttributes):
    """A :class:`~rampup.subject.RequestView` over a WSGI environ; parses on demand."""

    __slots__ = ("_query", "environ")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._query: dict[str, str] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """The attribute ``name``, or ``default``; ``header.<name>`` straight from the environ
        (conditions on headers are the common case in flag files), not through
        :meth:`header`: a subclass that overrides ``header`` must override this too."""
        key = _ATTRIBUTE_KEYS.get(name)  # attribute_environ_key's memo, read here first
        if key is None:
            key = attribute_environ_key(name)
        if not key:
            return ViewAttributes.get(self, name, default)
        value = self.environ.get(key)
        return default if value is None or len(value) > MAX_HEADER else value

    def header(self, name: str) -> str | None:
        """The header's value from the environ, or None if absent or oversized."""
        key = _ENVIRON_KEYS.get(name)  # environ_key's memo, read here to save its call
        value: str | None = self.environ.get(key if key is not None else environ_key(name))
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


#: Header values longer than this are ignored (they are not ids, flags or attributes).
MAX_HEADER = 8 * 1024


class _Body:
    """The app's response iterable, unchanged, with the request's Flags bound again whenever
    app code runs for it (each chunk, and ``close()``), like Flask's ``stream_with_context``.

    Binding per step instead of from ``__call__`` until ``close()`` means a server (or test
    client) that never closes the body, or iterates it in another thread, cannot leak one
    request's flags into the next. Listeners hear the end once: at exhaustion or ``close()``.
    An iterator class rather than a generator: it costs about half as much per request.
    """

    __slots__ = ("_environ", "_flags", "_inner", "_it", "_runtime", "_seen")

    def __init__(
        self,
        it: Iterable[bytes],
        flags: Flags,
        environ: dict[str, Any],
        runtime: Runtime | None = None,
        seen: list[str] | None = None,
    ) -> None:
        self._it = it
        self._flags = flags
        self._environ: dict[str, Any] | None = environ
        #: set when listeners want the request's end: told with the last status line seen
        self._runtime = runtime
        self._seen = seen
        self._inner: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        if self._inner is None:  # iter() twice must not restart the body
            self._start()
        return self

    def _start(self) -> Iterator[bytes]:
        token = _current.set(self._flags)
        try:
            inner = self._inner = iter(self._it)
        except BaseException as exc:
            self._end(exc)
            raise
        finally:
            _current.reset(token)
        return inner

    def __next__(self) -> bytes:
        inner = self._inner
        if inner is None:
            inner = self._start()
        token = _current.set(self._flags)
        try:
            return next(inner)
        except StopIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        finally:
            _current.reset(token)

    def close(self) -> None:
        token = _current.set(self._flags)
        try:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
        finally:
            _current.reset(token)
            self._end(None)

    def _end(self, error: BaseException | None) -> None:
        # Once only, even if a server closes twice: listeners see one end per request.
        runtime, self._runtime = self._runtime, None
        if runtime is not None and isinstance(self._flags, RequestFlags):
            runtime.finish(self._flags, _last_status(self._seen), error)
        environ, self._environ = self._environ, None
        if environ is not None:
            _forget(environ, self._flags)


class RampupMiddleware:
    """Wrap any WSGI app: ``app = RampupMiddleware(app, flags="flags.toml", **options)``.

    ``flags`` is a flag file path (hot-reloaded), a mapping, a Snapshot or a source. Options are
    the fields of :class:`rampup._request.Settings` (``user_header=``, ``cookie_name=``, ...).

    ``stream_context=False`` is for frameworks whose streaming needs their own context anyway
    (Flask's ``stream_with_context``): a body that reports its close (Werkzeug's
    ``ClosingIterator``) is then handed over unwrapped, which saves a wrapper per request.
    """

    __slots__ = ("app", "runtime", "stream_context")

    def __init__(
        self,
        app: WSGIApp,
        /,
        flags: Any = None,
        *,
        runtime: Runtime | None = None,
        stream_context: bool = True,
        **options: Any,
    ) -> None:
        self.app = app
        self.runtime = runtime if runtime is not None else Runtime.from_options(flags, options)
        self.stream_context = stream_context

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if ENVIRON_KEY in environ:  # nested rampup middleware: the outer one already did it
            return self.app(environ, start_response)
        runtime = self.runtime
        try:
            f = runtime.opener(environ, WSGIView)
        except Exception:
            log.exception("rampup: could not open the request; every flag reads as off")
            return self._serve_fallback(environ, start_response)
        environ[ENVIRON_KEY] = f
        eager = runtime.eager_headers
        # The status line, only kept when listeners want each request's status.
        seen: list[str] | None = [] if runtime.needs_end else None

        def _start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            if f.minted is not None or f.override_state is not None or eager:
                extra = runtime.response_headers(f)
                if extra:
                    headers = [*headers, *extra]
            if seen is not None:
                seen.append(status)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = _current.set(f)
        try:
            body = self.app(environ, _start_response)
        except BaseException as exc:
            if seen is not None:
                runtime.finish(f, _last_status(seen), exc)
            raise
        finally:
            _current.reset(token)
        # e.g. telemetry with nothing recorded for this request needs no end
        if seen is not None and runtime.wants_end(f):
            callbacks = None if self.stream_context else getattr(body, "_callbacks", None)
            if type(body) is list:
                # Already produced: no app code runs while a list is sent, so the request
                # ends now (following it costs a wrapper and two context switches).
                runtime.finish(f, _last_status(seen), None)
            elif type(callbacks) is list:  # Werkzeug's ClosingIterator: its close() ends it
                callbacks.append(partial(_finish, runtime, f, seen))
            else:
                return _Body(body, f, environ, runtime, seen)
        if type(body) is not list:
            if not self.stream_context:
                # The framework streams in its own context (Flask: stream_with_context), where
                # rampup.flags finds the Flags in the environ: the entry must outlive this
                # call, so it goes when the server closes the body. Werkzeug's
                # ClosingIterator (what Flask returns) takes close callbacks.
                callbacks = getattr(body, "_callbacks", None)
                if type(callbacks) is list:
                    callbacks.append(partial(_forget, environ, f))
                    return body
            if not _is_file_wrapper(body, environ):
                return _Body(body, f, environ)
        # Already produced (a list), or a file the server may sendfile(): no app code runs
        # while it is sent, so hand it over as is.
        _forget(environ, f)  # environ <-> Flags is a cycle: free it now, not by the GC
        return body

    def _serve_fallback(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        f = Flags(_FALLBACK)
        environ[ENVIRON_KEY] = f
        token = _current.set(f)
        try:
            body = self.app(environ, start_response)
        finally:
            _current.reset(token)
        return _Body(body, f, environ)


def _finish(runtime: Runtime, f: RequestFlags, seen: list[str]) -> None:
    runtime.finish(f, _last_status(seen), None)


def _forget(environ: dict[str, Any], f: Flags) -> None:
    """Drop the environ's reference to its request's Flags (which refer to the environ): a
    request must not end as a reference cycle, which only the garbage collector frees."""
    if environ.get(ENVIRON_KEY) is f:
        del environ[ENVIRON_KEY]


def _is_file_wrapper(body: Iterable[bytes], environ: dict[str, Any]) -> bool:
    wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(wrapper, type) and isinstance(body, wrapper)


def _last_status(seen: list[str] | None) -> int | None:
    """The status code of the last status line the app started (None: none yet)."""
    if not seen:
        return None
    try:
        return int(seen[-1][:3])
    except ValueError:
        return 0


def flags_of(environ: dict[str, Any]) -> RequestFlags | None:
    """The Flags the middleware bound to this environ, if any (None also when rampup could
    not open the request and bound its all-off fallback)."""
    f = environ.get(ENVIRON_KEY)
    return f if isinstance(f, RequestFlags) else None
