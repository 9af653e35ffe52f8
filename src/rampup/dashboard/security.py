"""Who may use the dashboard, and proof that a POST came from its own page.

* **Authorisation**: a callback given the :class:`~rampup.dashboard.http.Request` returns the
  user (a name, or any object whose ``str`` names them) or None/False to refuse (403). Without
  one the dashboard refuses to start, unless ``debug=True``; then it answers loopback clients
  only (127.0.0.1, ::1) and refuses everyone else.
* **CSRF**: a random per-session value in an HttpOnly, SameSite=Strict cookie; each form
  carries ``HMAC(secret, session | user)``, checked in constant time. A POST whose ``Origin``
  names another host is refused too.
* **Headers**: a strict Content-Security-Policy (scripts and styles from the dashboard itself
  only, no inline code), no framing, no sniffing, no referrer, no caching.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import RampupError
from .http import Request

__all__ = [
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Authorize",
    "Csrf",
    "Unprotected",
    "is_loopback",
    "who",
]

log = logging.getLogger("rampup.dashboard")

#: the cookie holding the per-session random value
SESSION_COOKIE = "rampup_dash"

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

Authorize = Callable[[Request], Any]


class Unprotected(RampupError, ValueError):
    """The dashboard was built without ``authorize=`` outside debug mode: it refuses to start.

    .. versionadded:: 0.2.0
    """


def is_loopback(addr: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and an IPv4-mapped loopback)."""
    try:
        ip = ipaddress.ip_address(addr.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_mount(authorize: Authorize | None, debug: bool) -> None:
    """Refuse to build a dashboard nobody guards."""
    if authorize is None and not debug:
        raise Unprotected(
            "rampup.dashboard needs authorize=: a function given the request that returns the "
            "user (or None to refuse with 403), e.g. authorize=lambda request: "
            "request.headers.get('x-forwarded-user') behind an authenticating proxy. For a "
            "local try-out only, pass debug=True: it then answers 127.0.0.1 and ::1 and refuses "
            "everyone else."
        )


def who(request: Request, authorize: Authorize | None) -> str | None:
    """The user the callback names, or None (refused). A callback that raises refuses too."""
    if authorize is None:  # debug mode: loopback only
        return "debug@localhost" if is_loopback(request.remote_addr) else None
    try:
        user = authorize(request)
    except Exception:
        log.exception("rampup.dashboard: the authorize callback failed; refusing the request")
        return None
    if user is None or user is False or user == "":
        return None
    return str(user)[:200]


class Csrf:
    """Per-session random values and their HMAC tokens."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes | None) -> None:
        if secret is None:
            # one per process: forms are posted back to the process that rendered them only
            # when there is one process; several workers need a shared secret= (see the docs)
            secret = secrets.token_bytes(32)
        self._key = hashlib.sha256(
            b"rampup.dashboard.csrf:" + (secret.encode() if isinstance(secret, str) else secret)
        ).digest()

    @staticmethod
    def new_session() -> str:
        """A fresh random session value."""
        return secrets.token_urlsafe(24)

    def token(self, session: str, user: str) -> str:
        """The token the forms of ``session`` carry."""
        mac = hmac.new(self._key, f"{session}|{user}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check(self, request: Request, form: dict[str, str]) -> str | None:
        """None when the POST is genuine, else why it is refused."""
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session:
            return "no session cookie: reload the page and try again (are cookies blocked?)"
        origin = request.headers.get("origin", "")
        if origin and origin != "null":
            host = request.headers.get("host", "")
            if urlsplit(origin).netloc.lower() != host.lower():
                return f"the form was posted from another site ({origin})"
        sent = form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, self.token(session, request.user)):
            return "the form's security token does not match: reload the page and try again"
        return None

    def sign(self, text: str) -> str:
        """A short MAC of a notice carried in a redirect's query string, so a crafted link
        cannot put words on the page."""
        mac = hmac.new(self._key, b"notice:" + text.encode(), hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verified(self, text: str, sig: str) -> str:
        """``text`` when ``sig`` is its MAC, else ""."""
        return text if text and hmac.compare_digest(sig, self.sign(text)) else ""

    @staticmethod
    def cookie(session: str, request: Request) -> tuple[str, str]:
        """The Set-Cookie header for a new session value."""
        path = request.root or "/"
        secure = "; Secure" if request.scheme == "https" else ""
        return (
            "Set-Cookie",
            f"{SESSION_COOKIE}={session}; Path={path}; HttpOnly; SameSite=Strict{secure}",
        )
