"""The lab's registry: every target, its real server, its flaw and what it is expected to do.

The expectations here are not documentation only: tests/lab/ measures each target against them
(status codes, peak RSS while a 64 MiB body is handled, retention over 200 requests), and the scanner,
audit and leak finder are judged against the same table.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hmacguard.errors import ConfigurationError

__all__ = ["LAB_SECRET", "NODE_APPS", "TARGETS", "Memory", "Server", "Target", "get_target"]

#: The secret every lab target verifies with. Lab only: never reuse it for anything real.
LAB_SECRET = "hmacguard-lab-secret"  # noqa: S105 (a lab-only secret, printed on purpose)
APPS = Path(__file__).parent / "apps"
NODE_APPS = APPS / "node"


class Server(str, enum.Enum):
    GUNICORN = "gunicorn"
    UVICORN = "uvicorn"
    #: Serves WSGI and ASGI apps alike; the guard's tests run the guarded targets under it too.
    HYPERCORN = "hypercorn"
    NODE = "node"


class Memory(str, enum.Enum):
    """What a 64 MiB body does to the server's memory, per framing."""

    BUFFERS = "buffers"  # holds the whole body (peak RSS grows by about the body size or more)
    BOUNDED = "bounded"  # refuses, streams or ignores it (peak RSS flat)


@dataclass(frozen=True)
class Target:
    name: str
    framework: str
    server: Server
    #: The flaw in one line (or "none: ..." for a correct target).
    flaw: str
    #: What a user should expect to observe, in one line.
    expected: str
    #: ``module:attribute`` (Python) or the script under apps/node/ (Node).
    app: str
    #: Effect of a 64 MiB body sent with Content-Length, and sent chunked.
    memory_content_length: Memory
    memory_chunked: Memory
    #: Whether memory is kept after each request (a leak), measured over 200 requests of 64 KiB.
    retains: bool = False
    #: Whether a 64 MiB body is refused (4xx) with each framing.
    refuses_content_length: bool = False
    refuses_chunked: bool = False
    path: str = "/webhook"
    scheme: str = "github"
    #: The content type a legitimate sender uses against this target.
    content_type: str = "application/json"
    asgi: bool = False
    workers: int = 2
    #: gunicorn's worker class (``sync``; ``gthread`` runs each worker's requests in ``threads``).
    worker_class: str = "sync"
    threads: int = 1
    seed: str = ""
    #: Whether the flaw is in how the signature is enforced (unsigned or replayed requests get in),
    #: which the scan's enforcement probes find, rather than in how the body is read.
    enforcement: bool = False
    #: Whether the flaw shows only across requests: each request is bounded, but many held open at
    #: once exhaust memory. The scan's held-uploads phase finds it; no per-request measurement or
    #: audit rule can.
    across_requests: bool = False
    #: What ``hmacguard scan`` reports, the server's memory observed (``--pid``): with forged
    #: signatures (no secret), and with ``--secret`` (probes signed correctly, so a replay and stale
    #: timestamps are tried too). tests/scan/test_lab_acceptance.py holds the scanner to both.
    scan_findings: tuple[str, ...] = ()
    scan_findings_signed: tuple[str, ...] = ()
    #: Memory the runtime floats whatever the app does. V8 collects Buffers lazily (it starts a GC
    #: on external-memory growth of tens of MiB), so a Node server that only streams still shows
    #: tens of MiB of garbage under a large upload and a slow climb over many requests.
    runtime_float: int = 0

    @property
    def vulnerable(self) -> bool:
        return not self.flaw.startswith("none")

    def command(self, port: int) -> list[str]:
        """The real server's command line, bound to 127.0.0.1:``port``."""
        if self.server is Server.GUNICORN:
            return [
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(self.workers),
                "--worker-class", self.worker_class,
                "--threads", str(self.threads),
                "--graceful-timeout", "5",
                "--log-level", "warning",
                self.app,
            ]  # fmt: skip
        if self.server is Server.UVICORN:
            return [
                sys.executable, "-m", "uvicorn",
                "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--log-level", "warning",
                *(["--interface", "asgi3"] if self.asgi else []),
                self.app,
            ]  # fmt: skip
        if self.server is Server.HYPERCORN:
            return [
                sys.executable, "-m", "hypercorn",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--log-level", "warning",
                # hypercorn tells WSGI from ASGI by this prefix, not by guessing.
                f"{'asgi' if self.asgi or self.framework == 'fastapi' else 'wsgi'}:{self.app}",
            ]  # fmt: skip
        return ["node", str(NODE_APPS / self.app)]

    def environment(self, port: int) -> Mapping[str, str]:
        return {"PORT": str(port), "HMACGUARD_LAB_SECRET": LAB_SECRET}


_B, _F = Memory.BUFFERS, Memory.BOUNDED
_V8_FLOAT = 48 * 1024 * 1024

TARGETS: Mapping[str, Target] = {
    t.name: t
    for t in (
        Target(
            "flask-get-data", "flask", Server.GUNICORN,
            "request.get_data() into hmac.new with no MAX_CONTENT_LENGTH: any body is read whole",
            "accepts and buffers any body, Content-Length or chunked",
            "hmacguard.lab.apps.flask_get_data:app", _B, _B, seed="000 (Flask warning)",
            scan_findings=("unbounded-body", "memory-amplification", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "unbounded-body", "memory-amplification", "no-rate-limit",
            ),
        ),
        Target(
            "flask-content-length-check", "flask", Server.GUNICORN,
            "the seed's Content-Length check: skipped for chunked bodies, and iterating "
            "request.stream yields lines, so a body without newlines is buffered whole",
            "413 for a large Content-Length; a chunked body of any size is read (and buffered)",
            "hmacguard.lab.apps.flask_content_length_check:app", _F, _B,
            refuses_content_length=True, seed="000 (Flask fix)",
            scan_findings=("chunked-bypass", "memory-amplification", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "chunked-bypass", "memory-amplification", "no-rate-limit",
            ),
        ),
        Target(
            "express-concat", "express", Server.NODE,
            "body += chunk string concatenation with no limit",
            "accepts and buffers any body (as a string: twice its size or more)",
            "express_concat.js", _B, _B, seed="000 (Express)", runtime_float=_V8_FLOAT,
            scan_findings=("unbounded-body", "memory-amplification", "memory-held-uploads", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "unbounded-body", "memory-amplification", "memory-held-uploads",
                "no-rate-limit",
            ),
        ),
        Target(
            "express-json-limit", "express", Server.NODE,
            "express.json({limit: '1mb'}) beside a streaming HMAC: other content types skip the "
            "limit, and for JSON the parser consumes the stream so the handler never answers",
            "JSON over 1 MB gets 413; octet-stream of any size is streamed through (unbounded, "
            "flat memory); a small JSON request gets no answer",
            "express_json_limit.js", _F, _F, content_type="application/octet-stream",
            seed="000 (Express fix)", runtime_float=_V8_FLOAT,
            scan_findings=("content-type-bypass", "late-rejection", "no-rate-limit", "degradation"),
            scan_findings_signed=(
                "replay-accepted", "content-type-bypass", "late-rejection", "no-rate-limit", "degradation",
            ),
        ),
        Target(
            "django-body-cache", "django", Server.GUNICORN,
            "view stores body and signature in a module-level dict per request (a leak); "
            "DATA_UPLOAD_MAX_MEMORY_SIZE = None",
            "keeps every body forever; buffers any Content-Length body; a chunked body reads as "
            "empty under WSGI (Django needs Content-Length) and is refused 403",
            "hmacguard.lab.apps.django_body_cache:application", _B, _F, retains=True,
            refuses_chunked=True, seed="001 (global cache)",
            scan_findings=("unbounded-body", "memory-amplification", "memory-retention", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "unbounded-body", "memory-amplification", "memory-retention",
                "no-rate-limit",
            ),
        ),
        Target(
            "django-middleware-attach", "django", Server.GUNICORN,
            "middleware attaches raw body and signature to the request and appends them to a "
            "module-level debug list; DATA_UPLOAD_MAX_MEMORY_SIZE = None",
            "keeps every body forever; buffers any Content-Length body; chunked reads as empty "
            "and is refused 403",
            "hmacguard.lab.apps.django_middleware_attach:application", _B, _F, retains=True,
            refuses_chunked=True, seed="001 (middleware)",
            scan_findings=("unbounded-body", "memory-amplification", "memory-retention", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "unbounded-body", "memory-amplification", "memory-retention",
                "no-rate-limit",
            ),
        ),
        Target(
            "django-stateless", "django", Server.GUNICORN,
            "none: the seed's stateless view, default DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), "
            "missing-header TypeError fixed",
            "400 for a Content-Length over 2.5 MB before reading; chunked reads as empty and is "
            "refused 403; keeps nothing",
            "hmacguard.lab.apps.django_stateless:application", _F, _F,
            refuses_content_length=True, refuses_chunked=True, seed="001 (stateless fix)",
            scan_findings=("no-rate-limit",),
            scan_findings_signed=("replay-accepted", "no-rate-limit"),
        ),
        Target(
            "fastapi-body", "fastapi", Server.UVICORN,
            "await request.body() with no limit under uvicorn",
            "accepts and buffers any body, Content-Length or chunked",
            "hmacguard.lab.apps.fastapi_body:app", _B, _B, workers=1,
            scan_findings=("unbounded-body", "memory-amplification", "memory-held-uploads", "no-rate-limit"),
            scan_findings_signed=(
                "replay-accepted", "unbounded-body", "memory-amplification", "memory-held-uploads",
                "no-rate-limit",
            ),
        ),
        Target(
            "fastapi-capped-buffer", "fastapi", Server.UVICORN,
            "streams under a 1 MiB cap (early 413, constant-time compare, a delivery processed "
            "once) but keeps the chunks until the body is whole: bounded per request, not across "
            "the many uploads uvicorn holds open at once",
            "413 for any body over 1 MiB without reading it; each open upload holds what it has "
            "sent, so slow forged uploads add up in the one worker",
            "hmacguard.lab.apps.fastapi_capped_buffer:app", _F, _F, workers=1,
            refuses_content_length=True, refuses_chunked=True, across_requests=True,
            scan_findings=("memory-held-uploads", "no-rate-limit"),
            scan_findings_signed=("memory-held-uploads", "no-rate-limit"),
        ),
        Target(
            "flask-streaming-capped", "flask", Server.GUNICORN,
            "none: cap enforced while streaming (chunked included), early 413 with "
            "Connection: close, constant-time comparison, a delivery processed once",
            "413 for any body over 1 MiB, Content-Length or chunked, without reading it; the same "
            "signed delivery twice: 409; keeps nothing",
            "hmacguard.lab.apps.flask_streaming_capped:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True,
            scan_findings=("no-rate-limit",), scan_findings_signed=("no-rate-limit",),
        ),
        # Enforcement flaws: each bounded and otherwise correct, so its one flaw is what the scan finds.
        Target(
            "flask-string-match-guard", "flask", Server.GUNICORN,
            "a hand-written WSGI middleware verifies when PATH_INFO == '/webhook'; Werkzeug routes "
            "//webhook to the same view unverified",
            "signed: 200; unsigned /webhook: 400; unsigned //webhook: 200 (the bypass); bodies over "
            "1 MiB: 413",
            "hmacguard.lab.apps.flask_string_match_guard:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, enforcement=True,
            scan_findings=(
                "signature-bypass-path", "no-rate-limit"), scan_findings_signed=("signature-bypass-path",
                "no-rate-limit",
            ),
        ),
        Target(
            "flask-verify-if-present", "flask", Server.GUNICORN,
            "verifies the signature only when the header is present: an unsigned request is processed",
            "unsigned: 200; forged: 401; bodies over 1 MiB: 413",
            "hmacguard.lab.apps.flask_verify_if_present:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, enforcement=True,
            scan_findings=(
                "signature-not-enforced", "no-rate-limit"), scan_findings_signed=("signature-not-enforced",
                "no-rate-limit",
            ),
        ),
        Target(
            "flask-no-dedupe", "flask", Server.GUNICORN,
            "verifies correctly but remembers no delivery: the same signed request is processed "
            "every time it is sent",
            "the same signed delivery: 200 every time; unsigned: 400; bodies over 1 MiB: 413",
            "hmacguard.lab.apps.flask_no_dedupe:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, enforcement=True,
            scan_findings=("no-rate-limit",),
            scan_findings_signed=("replay-accepted", "no-rate-limit"),
        ),
        Target(
            "flask-stripe-no-age", "flask", Server.GUNICORN,
            "Stripe-style: the HMAC covers t.body but the age of t is never checked, so an old "
            "delivery re-signed with its own old t is accepted",
            "a delivery signed an hour ago (or ahead): 200; the same one twice: 409; bodies over "
            "1 MiB: 413",
            "hmacguard.lab.apps.flask_stripe_no_age:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, scheme="stripe", enforcement=True,
            scan_findings=("no-rate-limit",),
            scan_findings_signed=("stale-timestamp-accepted", "no-rate-limit"),
        ),
        Target(
            "flask-stripe-header-dedupe", "flask", Server.GUNICORN,
            "Stripe-style: verifies every v1 entry and the age of t, but remembers processed "
            "deliveries by the Stripe-Signature header's text, so the same delivery with an entry "
            "added (v0=...) is processed again",
            "the same signed delivery twice: 200 then 409; again with a v0= entry added: 200; a "
            "delivery signed an hour ago: 400; bodies over 1 MiB: 413",
            "hmacguard.lab.apps.flask_stripe_header_dedupe:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, scheme="stripe", enforcement=True,
            scan_findings=("no-rate-limit",),
            scan_findings_signed=("replay-accepted", "no-rate-limit"),
        ),
        Target(
            "express-json-only", "express", Server.NODE,
            "JSON read raw under a 1 MiB cap (413 with Connection: close, never drained), verified on "
            "its bytes, a delivery processed once, every other content type answered 403 before a "
            "byte is read (a negative for content-type-bypass) -- but the chunks are kept until the "
            "body is whole: bounded per request, not across the uploads Node holds open at once",
            "JSON over 1 MiB: 413 without reading it (chunked: at the cap); other content types: "
            "403 at once; the same signed delivery twice: 409; slow uploads add up",
            "express_json_only.js", _F, _F,
            refuses_content_length=True, refuses_chunked=True, runtime_float=_V8_FLOAT,
            across_requests=True,
            scan_findings=("memory-held-uploads", "no-rate-limit"),
            scan_findings_signed=("memory-held-uploads", "no-rate-limit"),
        ),
        Target(
            "flask-guarded", "flask", Server.GUNICORN,
            "none: hmacguard's Flask extension (@guard.protected): streaming verification under a "
            "1 MiB cap, rate limits before the body, replay store",
            "413 problem+json for any body over 1 MiB (Content-Length: before reading; chunked: at "
            "the cap), 401/400 for bad signatures, 409 for a replay, 429 past the limits; keeps "
            "nothing",
            "hmacguard.lab.apps.flask_guarded:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, workers=1,
            scan_findings=(), scan_findings_signed=(),
        ),
        Target(
            "django-guarded", "django", Server.GUNICORN,
            "none: hmacguard around Django's application from settings.HMACGUARD; the view reads "
            "the verified request.body",
            "413 problem+json for any body over 1 MiB (chunked too, which Django alone cannot "
            "read), 401/400 for bad signatures, 409 for a replay, 429 past the limits; keeps "
            "nothing",
            "hmacguard.lab.apps.django_guarded:application", _F, _F,
            refuses_content_length=True, refuses_chunked=True, workers=1,
            scan_findings=(), scan_findings_signed=(),
        ),
        Target(
            "fastapi-guarded", "fastapi", Server.UVICORN,
            "none: hmacguard's ASGIGuard middleware and the VerifiedBodyDependency, with a memory "
            "budget (1 MiB in the lab) bounding what all uploads hold at once",
            "413 problem+json for any body over 1 MiB (Content-Length: before reading; chunked: at "
            "the cap), 401/400 for bad signatures, 409 for a replay, 429 past the limits; keeps "
            "nothing",
            "hmacguard.lab.apps.fastapi_guarded:app", _F, _F,
            refuses_content_length=True, refuses_chunked=True, workers=1,
            scan_findings=(), scan_findings_signed=(),
        ),
    )
}  # fmt: skip


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigurationError(f"unknown lab target {name!r} (see `hmacguard lab list`)") from None
