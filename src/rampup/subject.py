"""Who a request is for: the request view adapters provide, its attributes, the anonymous id.

Adapters wrap their framework's request in a :class:`RequestView` that parses nothing up front:
a header or cookie is looked up only when a flag needs it. Every value read from the request is
untrusted and size-capped here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from .model import Subject

__all__ = [
    "MAX_COOKIE_HEADER",
    "MAX_HEADER",
    "MAX_KEY",
    "Cookie",
    "RequestAttributes",
    "RequestView",
    "clean_key",
    "environ_key",
    "find_cookie",
    "header_bytes",
    "mint_anonymous_id",
    "parse_cookies",
    "valid_anonymous_id",
]

#: A user id longer than this is not an id; it is ignored.
MAX_KEY = 256
#: Header values longer than this are ignored (they are not ids, flags or attributes).
MAX_HEADER = 8 * 1024
#: Cookie headers longer than this are not parsed (browsers cap a cookie at 4 KB).
MAX_COOKIE_HEADER = 16 * 1024


class RequestView(Protocol):
    """**Protocol:** the read-only slice of a request that rampup needs, parsed lazily."""

    def header(self, name: str) -> str | None:
        """The header's value (name is case-insensitive), or None."""

    def cookie(self, name: str) -> str | None:
        """The cookie's value, or None."""

    def query(self, name: str) -> str | None:
        """The query parameter's value, or None."""

    @property
    def path(self) -> str:
        """The request path."""

    @property
    def method(self) -> str:
        """The HTTP method."""

    @property
    def host(self) -> str:
        """The Host header (or server name)."""

    @property
    def client_ip(self) -> str | None:
        """The peer address as the server saw it (no X-Forwarded-For trust)."""

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""


def parse_cookies(header: str) -> dict[str, str]:
    """A ``Cookie:`` header -> dict; first occurrence wins (as browsers send the most specific
    cookie first). Oversized headers give nothing rather than a partial parse."""
    out: dict[str, str] = {}
    if not header or len(header) > MAX_COOKIE_HEADER:
        return out
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in out:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out[name] = value
    return out


def find_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie:`` header, or None; same result as
    ``parse_cookies(header).get(name)`` without parsing the other cookies (a request needs
    one or two of them, and parsing all costs several times more)."""
    if not header or len(header) > MAX_COOKIE_HEADER:
        return None
    target = name + "="
    before, found, rest = header.partition(target)
    if not found:
        return None
    # Browsers separate cookies with "; ": when the first mention of the name starts the
    # header or follows "; ", it is the cookie; anything else takes the careful scan.
    if before and not before.endswith("; "):
        i = _find_whole(header, target, len(before))
        if i == -1:
            return None
        rest = header[i + len(target) :]
    value = rest.partition(";")[0].strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def _find_whole(header: str, target: str, i: int) -> int:
    """The index of the first ``target`` at or after ``i`` that starts a cookie (not the tail
    of another cookie's name or value), or -1."""
    while i != -1:
        j = i - 1
        while j >= 0 and header[j] in " \t":
            j -= 1
        if j < 0 or header[j] == ";":
            return i
        i = header.find(target, i + 1)
    return -1


def environ_key(name: str) -> str:
    """``X-User-Id`` -> ``HTTP_X_USER_ID``: its WSGI environ (and Django ``META``) key."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def header_bytes(name: str) -> bytes:
    """``X-User-Id`` -> ``b"x-user-id"``: its ASGI header name."""
    return name.lower().encode("latin-1")


def clean_key(raw: Any) -> str | None:
    """A subject key from untrusted input: a printable string of at most 256 chars, or None."""
    if raw is None:
        return None
    key = raw if isinstance(raw, str) else str(raw)
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        return None
    return key


def mint_anonymous_id() -> str:
    """A new anonymous id: 128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def valid_anonymous_id(value: str | None) -> TypeGuard[str]:
    """True for an id rampup could have minted; anything else is replaced."""
    # 32 ASCII characters, and nothing left once the hex digits are deleted (a bytes table
    # deletion in C: half the cost of str.strip(chars), a third of a regex).
    return (
        value is not None
        and len(value) == 32
        and value.isascii()
        and not value.encode("ascii").translate(None, _HEX)
    )


_HEX = b"0123456789abcdef"


_BUILTIN = ("path", "method", "host", "ip", "scheme")


class RequestAttributes(Mapping[str, Any]):
    """The attributes conditions can test, read from the request view when a condition asks:
    ``path``, ``method``, ``host``, ``ip``, ``scheme``, ``header.<name>``, ``cookie.<name>``,
    plus whatever the user callback returned (which wins on a clash)."""

    __slots__ = ("_extra", "_view")

    def __init__(self, view: RequestView, extra: Mapping[str, Any] | None = None) -> None:
        self._view = view
        self._extra = extra or {}

    def get(self, name: str, default: Any = None) -> Any:
        """The attribute ``name`` (a callback extra wins), or ``default`` if there is none."""
        extra = self._extra
        if extra and name in extra:
            return extra[name]
        view = self._view
        if name.startswith("header."):  # the most common in flag files, so tested first
            v = view.header(name[7:])
            return default if v is None else v
        if name.startswith("cookie."):
            v = view.cookie(name[7:])
            return default if v is None else v
        if name == "path":
            return view.path
        if name == "method":
            return view.method
        if name == "host":
            return view.host
        if name == "ip":
            return view.client_ip
        if name == "scheme":
            return view.scheme
        return default

    def __getitem__(self, name: str) -> Any:
        v = self.get(name, _MISSING)
        if v is _MISSING:
            raise KeyError(name)
        return v

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (k for k in _BUILTIN if k not in self._extra)

    def __len__(self) -> int:
        return len(self._extra) + sum(1 for k in _BUILTIN if k not in self._extra)

    def __repr__(self) -> str:
        return f"RequestAttributes({dict(self)!r})"


_MISSING: Any = object()


def subject_from(result: Any, view: RequestView) -> Subject | None:
    """Interpret what a user callback returned: a key, a Subject, a mapping with ``key``."""
    if result is None:
        return None
    if isinstance(result, Subject):
        attrs = RequestAttributes(view, result.attributes)
        return Subject(clean_key(result.key), attrs)
    if isinstance(result, Mapping):
        extra = {k: v for k, v in result.items() if k != "key"}
        return Subject(clean_key(result.get("key")), RequestAttributes(view, extra))
    return Subject(clean_key(result), RequestAttributes(view))


@dataclass(frozen=True, slots=True)
class Cookie:
    """A cookie rampup sets, as data; :meth:`header` is its ``Set-Cookie`` value."""

    name: str
    value: str
    path: str = "/"
    max_age: int | None = None  #: None: a session cookie
    domain: str | None = None
    secure: bool = False
    httponly: bool = True
    samesite: str | None = "Lax"

    def header(self) -> str:
        """``name=value; Path=/; Max-Age=...; HttpOnly; SameSite=Lax[; Domain=...][; Secure]``"""
        parts = [f"{self.name}={self.value}", f"Path={self.path}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)
