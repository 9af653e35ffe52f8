"""The ``RAMPUP = {...}`` Django setting -> :class:`rampup.Options` and a request runtime.

Read once per middleware instance (Django builds the middleware chain once per handler), so
nothing here runs on the request path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ..lifecycle import Runtime
from ..options import Options, unknown_names
from . import defaults

__all__ = ["build_runtime", "build_settings", "get_setting", "known_settings"]

_FIELDS = {f.name.upper(): f for f in dataclasses.fields(Options)}
_MISSING: Any = object()


def known_settings() -> list[str]:
    """Every key ``RAMPUP`` accepts, sorted."""
    return sorted({"FLAGS", *_FIELDS})


def _user_settings() -> Mapping[str, Any]:
    value = getattr(settings, "RAMPUP", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"settings.RAMPUP must be a dict, e.g. RAMPUP = {{'FLAGS': BASE_DIR / 'flags.toml'}}; "
            f"got {type(value).__name__}"
        )
    unknown = unknown_names(value, known_settings(), "settings.RAMPUP key")
    if unknown:
        raise ImproperlyConfigured(unknown)
    return value


def get_setting(name: str, default: Any = _MISSING) -> Any:
    """``settings.RAMPUP[name]``, else ``rampup.django.defaults.<name>``, else the Options
    field's default (else ``default``)."""
    value = _user_settings().get(name, _MISSING)
    if value is not _MISSING:
        return value
    value = getattr(defaults, name, _MISSING)
    if value is not _MISSING:
        return value
    field = _FIELDS.get(name)
    if field is not None:
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
    if default is _MISSING:
        raise ImproperlyConfigured(f"rampup: no setting {name!r}; known: {known_settings()}")
    return default


def _imported(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as exc:
        msg = f"settings.RAMPUP[{what!r}]: cannot import {value!r}: {exc}"
        raise ImproperlyConfigured(msg) from exc


def _listener(value: Any) -> Any:
    obj = _imported(value, "LISTENERS")
    return obj() if isinstance(obj, type) else obj


def _secret_key() -> str | None:
    try:
        key = getattr(settings, "SECRET_KEY", None)
    except ImproperlyConfigured:  # Django raises on an empty SECRET_KEY
        return None
    return key or None


def build_settings() -> Options:
    """:class:`~rampup.Options` from ``settings.RAMPUP``; ImproperlyConfigured on a bad value."""
    options = {name.lower(): get_setting(name) for name in _FIELDS}
    options["user"] = _imported(options["user"], "USER")
    if options["user"] is not None and not callable(options["user"]):
        raise ImproperlyConfigured(
            "settings.RAMPUP['USER'] must be a callable or a dotted path "
            "to one, e.g. lambda r: r.user.pk if r.user.is_authenticated "
            "else None"
        )
    options["listeners"] = tuple(_listener(v) for v in options["listeners"] or ())
    if options["debug"] is None:
        options["debug"] = bool(getattr(settings, "DEBUG", False))
    if options["framework_secret"] is None:
        options["framework_secret"] = _secret_key()
    try:
        return Options.from_options(options, where="RAMPUP key")
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"settings.RAMPUP: {exc}") from exc


def build_runtime() -> Runtime:
    """One Runtime (flag source + settings) for a middleware instance."""
    flags = get_setting("FLAGS")
    if flags is None:
        raise ImproperlyConfigured(
            "rampup.django.RampupMiddleware needs a flag file: set "
            "RAMPUP = {'FLAGS': BASE_DIR / 'flags.toml'} in your Django settings"
        )
    s = build_settings()
    try:
        return Runtime(flags, s)
    except TypeError as exc:  # flags of the wrong type; a bad flag file raises ConfigError
        raise ImproperlyConfigured(f"settings.RAMPUP['FLAGS']: {exc}") from exc
