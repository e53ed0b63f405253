"""One view that keeps every delivery's body in a class attribute."""

from __future__ import annotations

from typing import ClassVar

from django.http import HttpRequest, JsonResponse
from django.urls import path


class Deliveries:
    seen: ClassVar[dict[str, bytes]] = {}


def webhook(request: HttpRequest) -> JsonResponse:
    delivery = request.headers.get("X-GitHub-Delivery", "")
    Deliveries.seen[delivery] = request.body  # DJANGO-SETTINGS-LEAK
    return JsonResponse({"ok": True})


urlpatterns = [path("webhook", webhook)]
