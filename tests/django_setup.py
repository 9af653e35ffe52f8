"""Django configured once for the whole test session, whichever test module gets there first.

Django's settings can be configured only once per process, so every module that runs Django in
process calls :func:`configure_django` and then applies its own settings with
``override_settings``: the modules compose, in any order.
"""

from __future__ import annotations


def configure_django() -> None:
    """Configure and set up Django for the tests (idempotent)."""
    import django
    from django.apps import apps
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="django-test-secret",
            ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
            INSTALLED_APPS=["rampup.django"],
            DATABASES={},
            USE_TZ=True,
        )
    if not apps.ready:
        django.setup()
