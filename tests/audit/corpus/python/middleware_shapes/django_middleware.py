# ruff: noqa
# fmt: off
# Seed 001's pattern in each Django middleware shape: verify, then attach the raw body or signature.
import hashlib
import hmac

from django.utils.deprecation import MiddlewareMixin


def signature_middleware(get_response):
    def middleware(request):
        body = request.body
        request.META["RAW_BODY"] = body  # expect: py-body-attached-to-request
        return get_response(request)

    return middleware


class SignatureMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sig = request.headers.get("X-Signature", "")
        mine = hmac.new(b"k", request.body, hashlib.sha256).hexdigest()
        request.verified_signature = sig  # expect: py-body-attached-to-request
        request.signature_ok = hmac.compare_digest(mine, sig)  # ok: py-body-attached-to-request
        return self.get_response(request)


class LegacySignatureMiddleware(MiddlewareMixin):
    def process_request(self, request):
        setattr(request, "_raw_payload", request.body)  # expect: py-body-attached-to-request

    def process_view(self, request, view_func, view_args, view_kwargs):
        request.session["last_body"] = request.body  # expect: py-body-attached-to-request
        return None
