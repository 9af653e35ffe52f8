"""App config, so ``"rampup.django"`` in ``INSTALLED_APPS`` gets the label ``rampup``
(the default label would be ``django``) and Django finds the ``rampup_tags`` library."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class RampupConfig(AppConfig):  # type: ignore[misc]
    """rampup's Django app: template tags only; no models, no migrations."""

    name = "rampup.django"
    label = "rampup"
    verbose_name = "rampup"
