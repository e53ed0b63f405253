"""The guarded apps under every server the docs name, and hypercorn: signed requests 2xx, refusals
problem+json, nothing logged as an error.

- Flask (the extension) and Django (WSGI) under gunicorn's ``sync`` and ``gthread`` workers and
  under hypercorn (which serves WSGI too);
- FastAPI (middleware + dependency) and Django (ASGI) under uvicorn and hypercorn. Hypercorn ends
  every body with a separate, empty ``http.request`` message, which once made Django answer 500.

Each configuration takes 1,000 signed requests over keep-alive connections (each body unique: replay
protection is on), then one of each refusal.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from hmacguard.lab import RunningTarget, Server, Target, get_target, run_target
from hmacguard.schemes import sign_body

from .guardwire import post, signed_headers

pytestmark = pytest.mark.slow
REQUESTS = 1000


def _variant(name: str, server: Server, **changes: object) -> Callable[[], Target]:
    def build() -> Target:
        return dataclasses.replace(get_target(name), server=server, **changes)  # type: ignore[arg-type]

    return build


_DJANGO_ASGI = {"app": "hmacguard.lab.apps.django_guarded:asgi_application", "asgi": True}
CONFIGURATIONS: dict[str, Callable[[], Target]] = {
    "flask/gunicorn-sync": _variant("flask-guarded", Server.GUNICORN),
    "flask/gunicorn-gthread": _variant("flask-guarded", Server.GUNICORN, worker_class="gthread"),
    "flask/hypercorn": _variant("flask-guarded", Server.HYPERCORN),
    "django-wsgi/gunicorn-sync": _variant("django-guarded", Server.GUNICORN),
    "django-wsgi/gunicorn-gthread": _variant("django-guarded", Server.GUNICORN, worker_class="gthread"),
    "django-wsgi/hypercorn": _variant("django-guarded", Server.HYPERCORN),
    "django-asgi/uvicorn": _variant("django-guarded", Server.UVICORN, **_DJANGO_ASGI),
    "django-asgi/hypercorn": _variant("django-guarded", Server.HYPERCORN, **_DJANGO_ASGI),
    "fastapi/uvicorn": _variant("fastapi-guarded", Server.UVICORN),
    "fastapi/hypercorn": _variant("fastapi-guarded", Server.HYPERCORN),
}
# What a server logs when something went wrong: an error record, a traceback, a 500.
ERROR_IN_LOG = re.compile(r"\bERROR\b|Traceback|Exception in|\b500\b|error", re.IGNORECASE)


def _refusals(client: httpx.Client, running: RunningTarget) -> dict[str, tuple[int | None, str]]:
    """Status and content type of each refusal. The oversized body goes through the raw client,
    which reads the early 413 while still sending: httpx stops at the broken pipe when the server
    closes mid-upload (as it should), and reports a disconnect instead of the answer."""
    url = running.url
    forged = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    unsigned, wrong = client.post(url, content=b"{}"), client.post(url, content=b"{}", headers=forged)
    big = post(running, signed_headers(running, 1024 * 1024 + 1), 1024 * 1024 + 1)
    return {
        "unsigned": (unsigned.status_code, unsigned.headers["content-type"]),
        "forged": (wrong.status_code, wrong.headers["content-type"]),
        "oversized": (big.status, big.header("content-type") or ""),
    }


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_signed_requests_pass_and_refusals_are_problems_with_no_error_logged(configuration: str) -> None:
    env = {"HMACGUARD_LAB_RATE": "100000/minute"}
    with run_target(CONFIGURATIONS[configuration](), env=env) as running:
        statuses: Counter[int] = Counter()
        with httpx.Client(timeout=10) as client:
            for i in range(REQUESTS):
                body = b'{"delivery": %d}' % i
                statuses[
                    client.post(
                        running.url, content=body, headers=sign_body("github", running.secret, body)
                    ).status_code
                ] += 1
            refused = _refusals(client, running)
        log = running.log()
    assert statuses == {200: REQUESTS}, (statuses, log)
    assert {name: status for name, (status, _) in refused.items()} == {
        "unsigned": 400,
        "forged": 401,
        "oversized": 413,
    }
    assert {kind for _, kind in refused.values()} == {"application/problem+json"}
    assert not ERROR_IN_LOG.search(log), log
