"""Defaults for the ``RAMPUP = {...}`` setting, one constant per key (as django-waffle does).

Keys are the upper-cased fields of :class:`rampup.Options`, plus ``FLAGS``. A key
not listed here falls back to the Options field's own default (see ``conf.get_setting``).
"""

from __future__ import annotations

from typing import Any

#: the flag file (a path, hot-reloaded), a mapping, a Snapshot or a source; required
FLAGS: Any = None

#: request header carrying the user id (only behind a gateway that sets it), e.g. "X-User-Id"
USER_HEADER: str | None = None
#: cookie carrying the user id
USER_COOKIE: str | None = None
#: callable (or dotted path to one) given the HttpRequest; returns a key, Subject or mapping
USER: Any = None

#: the anonymous id cookie
COOKIE_NAME = "rampup_id"
COOKIE_DOMAIN: str | None = None
COOKIE_PATH = "/"
COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
#: None: Secure when the request is (``request.is_secure()``, honours SECURE_PROXY_SSL_HEADER)
COOKIE_SECURE: bool | None = None
COOKIE_SAMESITE = "Lax"

#: None: ``settings.DEBUG``
DEBUG: bool | None = None
#: None: ``settings.SECRET_KEY`` (signs overrides when OVERRIDE_SECRET is unset)
FRAMEWORK_SECRET: str | None = None

#: listeners (objects, or dotted paths; a dotted path to a class is instantiated)
LISTENERS: tuple[Any, ...] = ()
#: reload the flag file when it changes on disk
WATCH = True
