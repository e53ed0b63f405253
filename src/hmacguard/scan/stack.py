"""Which stack answers: the framework and server, from response headers and error bodies.

The scan sends a GET for a random path first: every framework answers an unknown path with its own
404 body (Django's "The requested resource was not found on this server.", Werkzeug's "The requested
URL was not found on the server.", Starlette's ``{"detail":"Not Found"}``, Express's
"Cannot GET /…", aiohttp's "404: Not Found", Tornado's ``<title>404: Not Found</title>``, nginx's
``<center>nginx</center>``). Server headers name the server (gunicorn, uvicorn, nginx, Werkzeug,
TornadoServer, aiohttp) and ``X-Powered-By: Express`` the framework. Every probe's answer adds clues.

:func:`stack_hint` gives the remediation for a rule in the identified stack's own terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hmacguard.scan.model import Stack
from hmacguard.scan.wire import Exchange

__all__ = ["FRAMEWORKS", "identify_stack", "stack_hint"]

FRAMEWORKS = ("django", "flask", "fastapi", "aiohttp", "tornado", "express", "nginx")

# (pattern over the lower-cased body, framework, clue)
_BODY_CLUES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"the requested resource was not found on this server"), "django", "Django 404 page"),
    (re.compile(r"<h1>bad request \(400\)</h1>"), "django", "Django 400 page"),
    (re.compile(r"the requested url was not found on the server"), "flask", "Werkzeug 404 page"),
    (re.compile(r"<title>\d{3} [a-z ]+</title>\s*<h1>"), "flask", "Werkzeug error page"),
    (re.compile(r'^\{"detail":'), "fastapi", "Starlette/FastAPI JSON error"),
    (re.compile(r"cannot (get|post|put|patch) /"), "express", "Express 404 page"),
    (re.compile(r"payloadtoolargeerror|<pre>[a-z]*error: "), "express", "Express error page"),
    (re.compile(r"^\d{3}: [a-z ]+$"), "aiohttp", "aiohttp plain-text error"),
    (re.compile(r"<title>\d{3}: [a-z ]+</title>"), "tornado", "Tornado error page"),
    (re.compile(r"<center>nginx(/[\d.]+)?</center>"), "nginx", "nginx error page"),
)
_SERVERS: tuple[tuple[str, str, str | None], ...] = (
    # (substring of the Server header, server name, framework it implies)
    ("gunicorn", "gunicorn", None),
    ("uvicorn", "uvicorn", None),
    ("hypercorn", "hypercorn", None),
    ("werkzeug", "werkzeug", "flask"),
    ("tornadoserver", "tornado", "tornado"),
    ("aiohttp", "aiohttp", "aiohttp"),
    ("nginx", "nginx", None),
    ("daphne", "daphne", None),
)
_LABELS = {
    "django": "Django", "flask": "Flask/Werkzeug", "fastapi": "FastAPI/Starlette",
    "aiohttp": "aiohttp", "tornado": "Tornado", "express": "Express", "nginx": "nginx",
}  # fmt: skip


def identify_stack(exchanges: Iterable[Exchange]) -> Stack:
    votes: dict[str, int] = {}
    clues: list[str] = []
    server: str | None = None
    for ex in exchanges:
        if not ex.responded:
            continue
        header = (ex.header("server") or "").lower()
        for needle, name, implies in _SERVERS:
            if needle in header:
                if server is None:
                    server = name
                    clues.append(f"Server: {ex.header('server')}")
                if implies:
                    votes[implies] = votes.get(implies, 0) + 1
        if (ex.header("x-powered-by") or "").lower().startswith("express"):
            if "express" not in votes:
                clues.append("X-Powered-By: Express")
            votes["express"] = votes.get("express", 0) + 2
        body = ex.body_head[:2048].decode("utf-8", "replace").strip().lower()
        for pattern, name, clue in _BODY_CLUES:
            if body and pattern.search(body):
                if clue not in clues:
                    clues.append(clue)
                votes[name] = votes.get(name, 0) + 2
    framework = max(votes, key=lambda k: (votes[k], k != "nginx")) if votes else None
    if framework == "nginx":
        # nginx in front of an unknown app: the server, not the framework.
        server, framework = "nginx", None
    return Stack(_LABELS.get(framework) if framework else None, server, tuple(clues))


# Remediation in each stack's terms; keyed by (rule, framework key).
_HINTS: dict[tuple[str, str], str] = {
    ("signature-not-enforced", "flask"): "Refuse in the view (or a decorator on it) when "
    "request.headers.get(...) is None -- never `if signature:` around the check; hmacguard's "
    "HmacGuard(app) with @guard.protected refuses a missing or wrong signature before the view runs.",
    ("signature-not-enforced", "django"): "Return HttpResponseBadRequest when request.headers lacks the "
    "signature, before comparing; hmacguard's Django middleware (settings.HMACGUARD) verifies before "
    "the view runs.",
    ("signature-not-enforced", "fastapi"): "Verify in a dependency on the route that raises "
    "HTTPException(400/401) when the header is missing or wrong (hmacguard's VerifiedBodyDependency).",
    ("signature-not-enforced", "express"): "Put the verifier on the route before the handler and answer "
    "400 when req.get(header) is undefined; compare with crypto.timingSafeEqual over the raw body.",
    ("signature-not-enforced", "aiohttp"): "Verify in a middleware or the handler and raise "
    "web.HTTPBadRequest when the header is missing, before any processing.",
    ("signature-bypass-path", "flask"): "Werkzeug merges slashes and WSGI servers decode %2F into "
    "PATH_INFO before routing: protect the view itself (@guard.protected, or check request.endpoint "
    "after routing) instead of comparing environ['PATH_INFO'] in a middleware.",
    ("signature-bypass-path", "django"): "Protect the view (a decorator, or middleware that checks "
    "request.resolver_match in process_view) instead of comparing request.path_info strings; mind "
    "APPEND_SLASH redirects.",
    ("signature-bypass-path", "fastapi"): "Protect the route with a dependency, not a middleware that "
    "compares scope['path']: the router (and redirect_slashes) match spellings the comparison misses.",
    ("signature-bypass-path", "express"): "Express routes case-insensitively and ignores a trailing "
    "slash: mount the verifier on the route itself (app.post(path, verify, handler)), or enable "
    "'case sensitive routing' and 'strict routing', instead of comparing req.path.",
    ("signature-bypass-path", "nginx"): "Keep merge_slashes on and let no broader location proxy the "
    "application: a location that verifies (auth_request) must be the only way to the handler.",
    ("replay-accepted", "flask"): "Keep processed delivery ids in Redis (SET key NX EX) shared by every "
    "gunicorn worker and answer 409 to a repeat; hmacguard's Verifier(replay=...) does, releasing the "
    "id when the view fails.",
    ("replay-accepted", "django"): "Record each delivery id in the cache backend every worker shares "
    "(cache.add returns False for a repeat) and answer 409; hmacguard's replay store does this.",
    ("replay-accepted", "fastapi"): "Record each delivery id in Redis (SET NX EX) in the verifying "
    "dependency and answer 409 to a repeat; an in-process set misses repeats on other workers.",
    ("replay-accepted", "express"): "Record each delivery id in Redis (SET NX EX) before processing and "
    "answer 409 to a repeat; a Set in one process misses repeats that reach another.",
    ("stale-timestamp-accepted", "flask"): "Use the provider's verifier (stripe.Webhook.construct_event, "
    "slack_sdk's SignatureVerifier, standardwebhooks' Webhook.verify: 5 minutes) or refuse "
    "abs(time.time() - timestamp) > 300 before comparing; hmacguard's Verifier has a tolerance.",
    ("stale-timestamp-accepted", "django"): "Use the provider's verifier (stripe.Webhook.construct_event, "
    "standardwebhooks' Webhook.verify) or refuse abs(time.time() - timestamp) > 300 before comparing.",
    ("stale-timestamp-accepted", "fastapi"): "Use the provider's verifier (stripe.Webhook.construct_event, "
    "slack_sdk's SignatureVerifier) in the dependency, or refuse a timestamp more than 300 s off.",
    ("stale-timestamp-accepted", "express"): "Use stripe.webhooks.constructEvent (300 s tolerance) or "
    "refuse Math.abs(Date.now() / 1000 - t) > 300 before comparing signatures.",
    ("unbounded-body", "django"): "Set DATA_UPLOAD_MAX_MEMORY_SIZE (never None) to what a webhook needs, "
    "e.g. 1_048_576; Django then refuses a larger Content-Length before reading it.",
    ("unbounded-body", "flask"): "Set app.config['MAX_CONTENT_LENGTH'] = 1024 * 1024; Werkzeug applies it "
    "to the stream, chunked bodies included, and answers 413.",
    ("unbounded-body", "fastapi"): "Starlette has no body limit: read request.stream() in chunks, count "
    "bytes and raise HTTPException(413) past the cap (or cap at the proxy).",
    ("unbounded-body", "aiohttp"): "Keep web.Application(client_max_size=...) at 1 MiB or less; "
    "request.read() enforces it.",
    ("unbounded-body", "tornado"): "Set max_body_size on the HTTPServer (and max_buffer_size), or stream "
    "with @stream_request_body and count bytes.",
    ("unbounded-body", "express"): "Use express.raw({ type: '*/*', limit: '1mb' }) and hash req.body, or "
    "count bytes in req.on('data') and destroy the request past the cap.",
    ("unbounded-body", "nginx"): "Set client_max_body_size 1m; in the server or location block.",
    ("chunked-bypass", "flask"): "Drop the request.content_length check: set MAX_CONTENT_LENGTH (Werkzeug "
    "enforces it while reading chunked bodies) or count bytes while reading request.stream.read(n).",
    ("chunked-bypass", "django"): "Under ASGI Django reads chunked bodies: keep DATA_UPLOAD_MAX_MEMORY_SIZE "
    "set and read request.body only after it is checked.",
    ("chunked-bypass", "fastapi"): "Count bytes while iterating request.stream(); do not rely on the "
    "content-length header.",
    ("chunked-bypass", "express"): "Count bytes in req.on('data') (or use raw-body with a limit): "
    "req.headers['content-length'] is absent for chunked requests.",
    ("chunked-bypass", "nginx"): "client_max_body_size also applies to chunked bodies: set it on the "
    "location that proxies the webhook.",
    ("content-type-bypass", "express"): "express.json({limit}) only parses JSON; other types skip it. "
    "Use express.raw({ type: '*/*', limit: '1mb' }) on the webhook route and verify req.body.",
    ("content-type-bypass", "flask"): "Set MAX_CONTENT_LENGTH, which applies to every content type, "
    "instead of a limit inside one parser.",
    ("content-type-bypass", "django"): "DATA_UPLOAD_MAX_MEMORY_SIZE covers request.body for every type; "
    "FILE_UPLOAD_MAX_MEMORY_SIZE only multipart: read request.body, not request.FILES.",
    ("content-type-bypass", "fastapi"): "Cap the raw stream in a dependency or middleware before any "
    "body model parses it.",
    ("late-rejection", "flask"): "Reject on request.content_length before reading and return 413 with "
    "Connection: close instead of reading the whole body first.",
    ("late-rejection", "django"): "Let DATA_UPLOAD_MAX_MEMORY_SIZE refuse on Content-Length; do not read "
    "request.body and then check len().",
    ("late-rejection", "express"): "Check req.headers['content-length'] first and destroy the stream at "
    "the cap instead of reading it and then comparing sizes.",
    ("late-rejection", "nginx"): "Let nginx refuse (client_max_body_size) instead of proxying the body.",
    ("memory-amplification", "django"): "Read request.body only under DATA_UPLOAD_MAX_MEMORY_SIZE, or "
    "stream request.read(65536) into hmac.update under a byte count.",
    ("memory-amplification", "flask"): "Stream request.stream.read(65536) into hmac.update under a "
    "byte count instead of request.get_data().",
    ("memory-amplification", "fastapi"): "async for chunk in request.stream(): mac.update(chunk), "
    "counting bytes, instead of await request.body().",
    ("memory-amplification", "express"): "req.on('data', c => hmac.update(c)) with a byte count; never "
    "body += chunk.",
    ("memory-amplification", "aiohttp"): "Iterate request.content.iter_chunked(65536) into the HMAC "
    "instead of await request.read().",
    ("memory-retention", "django"): "Keep bodies request-scoped: no module-level dicts/lists of bodies, "
    "no request attributes kept by middleware; key caches by hashlib.sha256(body).hexdigest().",
    ("memory-retention", "flask"): "Do not store request.get_data() or the request in globals, g-backed "
    "caches or lists; key caches by a digest of the body.",
    ("memory-retention", "fastapi"): "Do not keep bodies in module-level containers or app.state; key "
    "caches by a digest.",
    ("memory-retention", "express"): "Do not push bodies into module-level arrays or Maps; key caches by "
    "a digest and bound their size.",
    ("memory-held-uploads", "fastapi"): "ASGIGuard with Verifier(memory_budget=...) sends bodies to "
    "disk once all open requests hold the budget; never collect request.stream() chunks in a list.",
    ("memory-held-uploads", "django"): "HMACGUARD = {'MEMORY_BUDGET': ...} bounds what all requests "
    "hold at once under ASGI or gunicorn threads; or serve behind a proxy that buffers bodies.",
    ("memory-held-uploads", "express"): "Count what all open requests hold (add on 'data', subtract "
    "on 'close') and refuse or spill past a total; never keep chunks of an unfinished upload.",
    ("memory-held-uploads", "nginx"): "proxy_request_buffering on (the default): nginx keeps a slow "
    "upload (on disk past client_body_buffer_size) and passes only whole bodies on.",
    ("no-rate-limit", "django"): "Rate-limit the webhook view per client (e.g. django-ratelimit on "
    "Redis) before request.body is read; answer 429 with Retry-After.",
    ("no-rate-limit", "flask"): "Flask-Limiter (on the limits package, Redis storage for several "
    "workers) on the webhook route; answer 429 with Retry-After.",
    ("no-rate-limit", "fastapi"): "slowapi (on the limits package) or a limiter middleware before the "
    "body is read; answer 429 with Retry-After.",
    ("no-rate-limit", "express"): "express-rate-limit on the webhook route, before any body parser; it "
    "sends RateLimit headers and 429.",
    ("no-rate-limit", "nginx"): "limit_req_zone / limit_req on the webhook location (limit_req_status 429).",
    ("degradation", "django"): "Cap bodies (DATA_UPLOAD_MAX_MEMORY_SIZE), stream the HMAC and rate-limit; "
    "size gunicorn workers and --timeout for the worst accepted body.",
    ("degradation", "flask"): "Cap bodies (MAX_CONTENT_LENGTH), stream the HMAC and rate-limit; size "
    "gunicorn workers and --timeout for the worst accepted body.",
    ("degradation", "express"): "Cap bodies, make sure every code path answers (a handler that waits for "
    "'end' after a parser consumed the stream never does), and rate-limit.",
}
_KEYS = {label: key for key, label in _LABELS.items()}


def stack_hint(rule: str, stack: Stack) -> str | None:
    """Stack-specific remediation for ``rule``, prefixed with the stack's name; None if unknown."""
    keys = []
    if stack.framework:
        keys.append(_KEYS.get(stack.framework, ""))
    if stack.server == "nginx":
        keys.append("nginx")
    for key in keys:
        hint = _HINTS.get((rule, key))
        if hint:
            return f"{_LABELS[key]}: {hint}"
    return None
