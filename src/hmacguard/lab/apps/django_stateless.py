"""Seed 001's stateless view, with its missing-header TypeError fixed.

Django's default DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) makes ``request.body`` refuse a larger
Content-Length before reading it (RequestDataTooBig -> 400). Nothing outlives the request.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from hmacguard.lab.apps import _django
from hmacguard.lab.apps._common import SIGNATURE_META, github_signature


def webhook(request: HttpRequest) -> HttpResponse:
    signature = request.META.get(SIGNATURE_META)
    if signature is None:
        return HttpResponse("Missing signature", status=400)
    if not hmac.compare_digest(github_signature(request.body), signature):
        return HttpResponse("Invalid signature", status=403)
    return JsonResponse({"ok": True})


urlpatterns = [path("webhook", webhook)]
application = _django.configure(__name__)
