# ruff: noqa
# fmt: off
# Seed 001's patterns under Django's default DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
import collections
import functools
import hashlib
import hmac

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse

SIGNATURE_CACHE = {}
DEBUG_BODIES = []
RECENT = collections.deque(maxlen=100)
SEEN_DIGESTS = set()
CALLBACKS = []


def verify_hmac_view(request: HttpRequest) -> HttpResponse:
    # Seed 001's stateless view: request.body is bounded by Django's default limit.
    signature = request.META.get('HTTP_X_SIGNATURE')
    if signature is None:
        return HttpResponse('Missing signature', status=400)
    computed = hmac.new(
        key=settings.SECRET_KEY.encode('utf-8'),
        msg=request.body,  # ok: py-unbounded-body-hmac
        digestmod=hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(computed, signature):  # ok: py-compare-digest-none
        return HttpResponse('Invalid signature', status=403)
    return HttpResponse('OK')


def stream_hmac_verification(request):
    # Seed 001's streaming example: body_chunks() does not exist, and the header may be missing.
    h = hmac.new(key=settings.SECRET_KEY.encode('utf-8'), digestmod=hashlib.sha256)
    for chunk in request.body_chunks():
        h.update(chunk)
    computed = h.hexdigest()
    if not hmac.compare_digest(computed, request.META.get('HTTP_X_SIGNATURE')):  # expect: py-compare-digest-none
        raise SuspiciousOperation('Invalid signature')
    return HttpResponse('Stream verified')


def cache_key_for_body(body: bytes) -> str:
    return f'hmac_body:{hashlib.sha256(body).hexdigest()}'


def do_signed_processing(body: bytes) -> str:
    return hmac.new(b"k", body, hashlib.sha256).hexdigest()


def process_with_cache(request):
    # Seed 001's cache example: keyed by a hash of the body.
    key = cache_key_for_body(request.body)
    cached = cache.get(key)
    if cached is not None:
        return cached
    result = do_signed_processing(request.body)
    cache.set(key, result, timeout=60)  # ok: py-body-in-cache
    return result


def cache_by_raw_body(request):
    result = do_signed_processing(request.body)
    cache.set(request.body, result, timeout=60)  # expect: py-body-in-cache
    return HttpResponse(result)


def cache_body_value(request):
    delivery = request.META.get("HTTP_X_GITHUB_DELIVERY", "")
    cache.set(f"delivery:{delivery}", request.body, timeout=300)  # expect: py-body-in-cache
    return HttpResponse("ok")


@functools.lru_cache(maxsize=None)
def parse_payload(raw: bytes) -> int:
    return len(raw)


def memoized_view(request):
    return HttpResponse(str(parse_payload(request.body)))  # expect: py-body-in-cache


def global_cache_view(request):
    body = request.body
    signature = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    request_id = request.META.get("HTTP_X_REQUEST_ID", "")
    SIGNATURE_CACHE[request_id] = (body, signature)  # expect: py-body-retained-global
    return HttpResponse("ok")


def debug_list_view(request):
    DEBUG_BODIES.append({"body": request.body, "headers": dict(request.headers)})  # expect: py-body-retained-global
    return HttpResponse("ok")


def signature_set_view(request):
    SEEN_DIGESTS.add(request.headers.get("X-Hub-Signature-256", ""))  # expect: py-body-retained-global
    return HttpResponse("ok")


def bounded_recent_view(request):
    RECENT.append(request.body)  # ok: py-body-retained-global
    return HttpResponse("ok")


def hashed_global_view(request):
    SEEN_DIGESTS_LOCAL = set()
    SEEN_DIGESTS_LOCAL.add(request.body)  # ok: py-body-retained-global
    return HttpResponse(str(len(SEEN_DIGESTS_LOCAL)))


def closure_view(request):
    body = request.body
    CALLBACKS.append(lambda: len(body))  # expect: py-body-retained-global
    return HttpResponse("ok")


LAST_BODY = b""


def last_body_view(request):
    global LAST_BODY
    LAST_BODY = request.body  # expect: py-body-retained-global
    return HttpResponse("ok")


class SignatureMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.body
        request.raw_body = raw  # expect: py-body-attached-to-request
        request.signature = request.META.get("HTTP_X_SIGNATURE", "")  # expect: py-body-attached-to-request
        setattr(request, "payload", raw)  # expect: py-body-attached-to-request
        request.signature_ok = True  # ok: py-body-attached-to-request
        self.last_body = raw  # expect: py-body-retained-global
        return self.get_response(request)


class AuditTrail:
    entries = []

    def record(self, request):
        self.entries.append(request.body)  # expect: py-body-retained-global


def session_view(request):
    request.session["webhook_body"] = request.body  # expect: py-body-attached-to-request
    return HttpResponse("ok")


def read_view(request):
    # request.read() is not covered by DATA_UPLOAD_MAX_MEMORY_SIZE.
    payload = request.read()  # expect: py-unbounded-body-hmac
    return HttpResponse(hmac.new(b"k", payload, hashlib.sha256).hexdigest())


def timing_view(request):
    expected = hmac.new(b"k", request.body, hashlib.sha256).hexdigest()
    if expected == request.META.get("HTTP_X_SIGNATURE", ""):  # expect: py-signature-compare-timing
        return HttpResponse("ok")
    return HttpResponse("no", status=403)


def line_iteration_view(request):
    h = hmac.new(b"k", digestmod=hashlib.sha256)
    for line in request:  # expect: py-stream-line-iteration
        h.update(line)
    return HttpResponse(h.hexdigest())
