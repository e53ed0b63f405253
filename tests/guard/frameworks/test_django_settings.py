"""Django reads the guard from ``settings.HMACGUARD``; mistakes stop start-up with one clear error.

Each case runs in a fresh interpreter: Django's settings can be configured once per process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import sys
from django.conf import settings
kwargs = {config}
settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="x", **kwargs)
urlpatterns = []
from hmacguard import ConfigurationError
from hmacguard.integrations.django import get_{kind}_application
try:
    app = get_{kind}_application()
except ConfigurationError as exc:
    print("ConfigurationError:", exc)
    sys.exit(3)
print(type(app).__name__, app.guard.verifier.max_body)
"""


def _run(config: str, kind: str = "wsgi") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(config=config, kind=kind)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("kind", "cls"), [("wsgi", "WSGIGuard"), ("asgi", "ASGIGuard")])
def test_settings_build_the_guarded_application(kind: str, cls: str) -> None:
    done = _run('{"HMACGUARD": {"SECRETS": ["s"], "MAX_BODY": 4096, "PATHS": ["/hook"]}}', kind)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [cls, "4096"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{}", "settings.HMACGUARD is not set"),
        ('{"HMACGUARD": {"SECRETS": ["s"], "PATH": ["/x"]}}', "unknown key(s) PATH"),
        ('{"HMACGUARD": {"SCHEME": "stripe"}}', "['SECRETS'] is required"),
    ],
)
def test_mistakes_fail_at_start_up(config: str, message: str) -> None:
    done = _run(config)
    assert done.returncode == 3, done.stderr
    assert message in done.stdout
    assert "Traceback" not in done.stderr
