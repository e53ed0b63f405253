"""Seed 001's second pattern: middleware attaches the raw body and signature to the request, and
appends them to a module-level debug list "for observability"."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from hmacguard.lab.apps import _django
from hmacguard.lab.apps._common import SIGNATURE_META, github_signature

DEBUG_LOG: list[dict[str, object]] = []


class SignatureMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.body
        request.raw_body = raw  # type: ignore[attr-defined]
        request.signature = request.META.get(SIGNATURE_META, "")  # type: ignore[attr-defined]
        request.signature_ok = hmac.compare_digest(  # type: ignore[attr-defined]
            github_signature(raw),
            request.signature,  # type: ignore[attr-defined]
        )
        DEBUG_LOG.append({"body": raw, "signature": request.signature})  # type: ignore[attr-defined]
        return self.get_response(request)


def webhook(request: HttpRequest) -> HttpResponse:
    if not request.signature_ok:  # type: ignore[attr-defined]
        return HttpResponse("Invalid signature", status=403)
    return JsonResponse({"ok": True})


urlpatterns = [path("webhook", webhook)]
application = _django.configure(
    __name__,
    middleware=[f"{__name__}.SignatureMiddleware"],
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
)
