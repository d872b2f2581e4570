"""A small shop: PostgreSQL through Django's own backend, no host given (the plugin gives it)."""

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
