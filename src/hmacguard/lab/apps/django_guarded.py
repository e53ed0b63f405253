"""The guard around Django's application, configured from ``settings.HMACGUARD`` as docs/guide.md
shows: the fix for ``django-body-cache`` and ``django-middleware-attach``.

The view reads ``request.body`` as usual; the guard in front of Django has already verified it under
a 1 MiB cap and applied the rate limits. ``application`` is for gunicorn (WSGI),
``asgi_application`` for uvicorn (ASGI); both are the same project. One worker: the in-memory
replay store is per process (use ``"REPLAY": "redis://..."`` for several).

Lab knobs (environment): ``HMACGUARD_LAB_RATE`` (requests, default ``600/minute``),
``HMACGUARD_LAB_FAILURES`` (failed verifications, default ``20/minute``), ``HMACGUARD_LAB_REPLAY``
(``off`` turns replay protection off, e.g. to resend one identical signed body on purpose; the
default is on, in memory, as a real service would run it).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path

from hmacguard.integrations.django import (
    get_asgi_application,
    get_wsgi_application,
    verified_body,
)
from hmacguard.lab.apps import _django
from hmacguard.lab.apps._common import SECRET

REPLAY = None if os.environ.get("HMACGUARD_LAB_REPLAY") == "off" else "memory"


# This one-module project has no CsrfViewMiddleware; in a full project the view is @csrf_exempt
# (the signature, not a cookie, authenticates the sender).
def webhook(request: HttpRequest) -> JsonResponse:
    body = request.body  # the verified body: at most 1 MiB
    verified = verified_body(request)
    return JsonResponse({"ok": True, "bytes": len(body), "key": verified.key_index if verified else None})


urlpatterns = [path("webhook", webhook)]

HMACGUARD = {
    "SCHEME": "github",
    "SECRETS": [SECRET.decode()],
    "PATHS": ["/webhook"],
    "MAX_BODY": 1024 * 1024,
    "REPLAY": REPLAY,
    "RATE_LIMIT": {
        "LIMIT": os.environ.get("HMACGUARD_LAB_RATE", "600/minute"),
        "FAILURE_LIMIT": os.environ.get("HMACGUARD_LAB_FAILURES", "20/minute"),
    },
}
_django.configure(__name__, HMACGUARD=HMACGUARD)
application = get_wsgi_application()
asgi_application = get_asgi_application()
