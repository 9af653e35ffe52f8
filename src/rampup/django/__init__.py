"""Django integration: ``"rampup.django.RampupMiddleware"`` in ``MIDDLEWARE``.

Configure with ``RAMPUP = {"FLAGS": BASE_DIR / "flags.toml", ...}`` (keys are the upper-cased
options of :class:`rampup.Options`; an unknown one fails with a "did you mean" hint). Add
``"rampup.django"`` to ``INSTALLED_APPS`` for the ``{% load rampup_tags %}`` library, and
``"rampup.django.context_processors.flags"`` to expose ``flags`` in templates.
"""

from __future__ import annotations

try:
    import django  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without Django installed
    from ..errors import MissingDependency

    raise MissingDependency('rampup.django needs Django: pip install "rampup[django]"') from exc

from .decorators import flag_required as flag_required
from .middleware import RampupMiddleware as RampupMiddleware

__all__ = ["RampupMiddleware", "flag_required"]
