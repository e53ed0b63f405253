"""The Django project's URLconf for the matrix: one protected view, one unprotected, Django's own style."""

from __future__ import annotations

from django.conf.urls.i18n import i18n_patterns
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .matrix import OTHER_MARK, PROTECTED_MARK, VIEW_HEADER


@csrf_exempt
def webhook(request: HttpRequest) -> HttpResponse:
    request.body
    return HttpResponse(f"{PROTECTED_MARK}\n", content_type="text/plain", headers={VIEW_HEADER: "protected"})


@csrf_exempt
def other(request: HttpRequest) -> HttpResponse:
    request.body
    return HttpResponse(f"{OTHER_MARK}\n", content_type="text/plain", headers={VIEW_HEADER: "other"})


# The same view under a language prefix too: /intl/webhook/ for the default language, /fr/intl/webhook/
# and /de/intl/webhook/ for the others (LocaleMiddleware activates the path's language).
urlpatterns = [
    path("webhook/", webhook),
    path("other/", other),
    *i18n_patterns(path("intl/webhook/", webhook), prefix_default_language=False),
]
