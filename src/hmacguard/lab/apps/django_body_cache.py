"""Seed 001's first pattern: the view keeps body and signature in a module-level cache.

The cache is keyed by a request identifier and never pruned, so every request's body stays in memory
for the life of the worker. DATA_UPLOAD_MAX_MEMORY_SIZE is lifted "for large webhook payloads".
"""

from __future__ import annotations

import hmac
import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from hmacguard.lab.apps import _django
from hmacguard.lab.apps._common import SIGNATURE_META, github_signature

SIGNATURE_CACHE: dict[str, tuple[bytes, str]] = {}


def webhook(request: HttpRequest) -> HttpResponse:
    body = request.body
    signature = github_signature(body)
    request_id = request.META.get("HTTP_X_GITHUB_DELIVERY") or str(uuid.uuid4())
    SIGNATURE_CACHE[request_id] = (body, signature)  # the flaw: never released
    if not hmac.compare_digest(signature, request.META.get(SIGNATURE_META, "")):
        return HttpResponse("Invalid signature", status=403)
    return JsonResponse({"ok": True})


urlpatterns = [path("webhook", webhook)]
application = _django.configure(__name__, DATA_UPLOAD_MAX_MEMORY_SIZE=None)
