# ruff: noqa
# fmt: off
import hashlib
import hmac

from django.http import HttpResponse


def webhook(request):
    body = request.body  # expect: py-unbounded-body-hmac
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    received = request.headers.get("X-Hub-Signature-256", "")
    if not hmac.compare_digest(expected, received):
        return HttpResponse(status=401)
    return HttpResponse("ok")
