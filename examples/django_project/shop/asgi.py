"""ASGI entry point: uvicorn shop.asgi:application --app-dir examples/django_project --port 8001

The same middleware runs natively async here (no sync/async adaptation)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_asgi_application()
