"""Settings for the example shop: only what rampup needs (no database)."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-a-secret"  # also signs QA overrides, via RAMPUP's default
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["rampup.django"]  # for {% load rampup_tags %}
MIDDLEWARE = ["rampup.django.RampupMiddleware"]

RAMPUP = {
    "FLAGS": BASE_DIR.parent / "flags.toml",  # examples/flags.toml, reloaded when edited
    "USER": "shop.users.current_user",  # who the request is for (see shop/users.py)
}

ROOT_URLCONF = "shop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"context_processors": ["rampup.django.context_processors.flags"]},
    }
]
DATABASES = {}  # rampup needs none
USE_TZ = True
