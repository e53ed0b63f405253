"""Request body read whole into memory for an HMAC, with no cap that holds.

**What it finds.** A read of the entire request body whose value reaches an HMAC or hash
(``hmac.new``, ``hmac.digest``, ``.update()``, ``hashlib.*``), a signature verifier
(``stripe.Webhook.construct_event``, ``verify_signature(...)``) or a project function that hashes
its argument, when nothing bounds the read:

- Flask/Werkzeug ``request.get_data()``, ``request.data``, ``request.stream.read()``: bounded only
  by ``MAX_CONTENT_LENGTH`` (Werkzeug ≥ 2.3 enforces it while streaming, chunked bodies included).
  Reported when no module of the audited project sets it.
- Django ``request.body``: bounded by ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default); reported
  when the project sets it to ``None``. ``request.read()`` is not covered by that setting and is
  reported unless a strict Content-Length check precedes it.
- Starlette/FastAPI ``await request.body()``: no built-in cap; reported unless a limiting
  middleware is installed (an ``add_middleware``/``Middleware`` whose name mentions a limit).
- aiohttp ``await request.read()``/``text()``: bounded by ``client_max_size`` (1 MiB by default),
  reported when it is disabled; ``request.content.read()`` is never bounded by it.
- Raw WSGI ``environ["wsgi.input"].read()`` and bodies assembled from chunks
  (``body += chunk``) in a loop that counts no bytes.

**Why it matters.** The HMAC needs every byte, but not all at once. A whole-body read makes memory
grow with what the client sends; a few concurrent multi-gigabyte requests exhaust the worker.

**Not reported.** Reads after a strict Content-Length check (one that also refuses a missing
header), accumulation loops that count bytes and stop past a limit, and reads whose cap the
project's configuration cannot be read statically (e.g. Flask config loaded from a file).
Library code that reads Flask bodies is reported with medium confidence: whether it is bounded
depends on the application that mounts it.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.guards import has_strict_length_guard
from hmacguard.audit.python.taint import BODY, Taint
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_BODY_WORDS = (
    ".body", "get_data", ".data", ".json", "get_json", ".read(", ".readlines(", "stream", ".text(",
    "wsgi.input",
)  # fmt: skip
_SINK_WORDS = ("hmac", "hashlib", ".update(", "sign", "verif", "digest", "construct_event")

_STACK_HINT = {
    "flask": "Flask: set app.config['MAX_CONTENT_LENGTH'] (Werkzeug ≥ 2.3 enforces it while "
    "streaming) and hash request.stream in chunks.",
    "django": "Django: keep DATA_UPLOAD_MAX_MEMORY_SIZE at a few MB, or read request in chunks "
    "through a counting reader.",
    "django-stream": "Django: request.read() ignores DATA_UPLOAD_MAX_MEMORY_SIZE; read in chunks and count.",
    "starlette": "Starlette/FastAPI: iterate request.stream() counting bytes, or add a "
    "body-size-limiting middleware.",
    "aiohttp": "aiohttp: keep client_max_size at its 1 MiB default or lower.",
    "aiohttp-stream": "aiohttp: iterate request.content.iter_chunked() and count bytes.",
    "wsgi": "WSGI: read wsgi.input in chunks up to a cap; refuse past it with 413.",
}


def _uncapped(ctx: PyContext, source: Taint, strict_guard: bool) -> tuple[bool, str]:
    """(True, why) when nothing bounds ``source``; (False, "") otherwise."""
    facts = ctx.facts
    fw = source.framework.removesuffix("-lines")
    if source.api.startswith("chunks of"):
        if source.note == "counted":
            return False, ""
        why = "the loop that accumulates the chunks counts no bytes"
        if fw == "flask" and facts.flask_cap(ctx.file.path) in ("ok", "high", "unknown"):
            return False, ""
        return True, why
    if fw == "flask":
        cap = facts.flask_cap(ctx.file.path)
        if cap in ("ok", "high", "unknown") or strict_guard:
            return False, ""
        if cap == "disabled":
            return True, "MAX_CONTENT_LENGTH is set to None"
        return True, "no MAX_CONTENT_LENGTH is set anywhere in the audited sources"
    if fw == "django":
        if facts.django_cap(ctx.file.path) == "disabled":
            return True, "DATA_UPLOAD_MAX_MEMORY_SIZE is None"
        return False, ""
    if fw == "starlette":
        if facts.starlette_capped(ctx.file.path, source.line) or strict_guard:
            return False, ""
        return True, "Starlette/FastAPI has no body limit and no limiting middleware is installed"
    if fw == "aiohttp":
        if facts.aiohttp_cap == "disabled":
            return True, "client_max_size is disabled"
        return False, ""
    if strict_guard:
        return False, ""
    return True, "this API reads to the end of the stream whatever its size"


@audit_rule(
    id="py-unbounded-body-hmac",
    title="Request body read whole into memory for an HMAC, with no cap that holds",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Cap the body before reading it (a limit that also holds for chunked bodies) and "
    "feed the HMAC chunk by chunk from the stream, counting bytes and answering 413 past the cap.",
    trigger=all_of(any_of(*_BODY_WORDS), any_of(*_SINK_WORDS)),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    seen: set[tuple[int, int]] = set()
    for scope in ctx.sink_scopes():
        flow = ctx.flow(scope)
        strict = None
        for hit in flow.sink_hits():
            for source in sorted(hit.taints, key=lambda t: (t.line, t.column)):
                if source.kind != BODY or (source.line, source.column) in seen:
                    continue
                if strict is None:
                    strict = has_strict_length_guard(flow.nodes)
                uncapped, why = _uncapped(ctx, source, strict)
                if not uncapped:
                    continue
                seen.add((source.line, source.column))
                library = source.framework == "flask" and not ctx.facts.flask_apps
                yield finding_at(
                    "py-unbounded-body-hmac",
                    ctx.file.source,
                    source.line,
                    f"{source.api} reads the whole body into memory and feeds {hit.what} "
                    f"(line {hit.call.lineno}); {why}.",
                    column=source.column + 1,
                    values={
                        "api": source.api,
                        "framework": source.framework,
                        "sink": hit.what,
                        "sink_line": hit.call.lineno,
                        "cap": why,
                    },
                    stack=_STACK_HINT.get(source.framework.removesuffix("-lines")),
                    confidence="medium" if library else "high",
                )
