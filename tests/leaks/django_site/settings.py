"""A minimal Django project for ``hmacguard leaks --django-settings tests.leaks.django_site.settings``."""

SECRET_KEY = "hmacguard-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
ROOT_URLCONF = "tests.leaks.django_site.urls"
MIDDLEWARE: list[str] = []
INSTALLED_APPS: list[str] = []
USE_TZ = True
LOGGING_CONFIG = None
