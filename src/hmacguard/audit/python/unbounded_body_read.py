"""Request body read whole on a stack the audit has no body limit for (no signature involved).

**What it finds.** A read of the entire request body that nothing bounds, on servers with no
body-size setting of their own, when the value does *not* reach an HMAC or verifier (that case is
``py-unbounded-body-hmac``, high severity):

- Twisted ``request.content.read()`` (Twisted spools the whole body before the resource runs);
- ``http.server`` handlers' ``self.rfile.read(length)`` with the client's Content-Length;
- raw WSGI ``environ["wsgi.input"].read()``.

**Why it matters.** An unbounded body is a memory risk with or without a signature: memory grows
with whatever the client sends. Without an HMAC the endpoint is not this project's main concern,
so the severity is medium.

**Not reported.** Reads after a strict Content-Length check (one that refuses a missing header and
compares with a limit), and reads that feed an HMAC (reported by ``py-unbounded-body-hmac``).
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.guards import has_strict_length_guard
from hmacguard.audit.python.taint import BODY, body_source
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_STACKS = {"twisted": "Twisted", "http.server": "http.server", "wsgi": "WSGI"}


@audit_rule(
    id="py-unbounded-body-read",
    title="Request body read whole on a stack with no body limit (no signature involved)",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.MEDIUM,
    cwe=(400, 770),
    remediation="Refuse bodies above a cap before reading them (a strict Content-Length check that "
    "also refuses a missing header), or read in chunks, counting bytes, and answer 413 past the cap.",
    trigger=any_of("content.read(", "rfile.read(", "wsgi.input"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for scope in ctx.scopes("content.read(", "rfile.read(", "wsgi.input", functions_only=True):
        flow = ctx.flow(scope)
        hashed = {(t.line, t.column) for hit in flow.sink_hits() for t in hit.taints}
        strict: bool | None = None
        for node in flow.nodes:
            source = body_source(node, ctx.file)
            if source is None or source.kind != BODY or source.framework not in _STACKS:
                continue
            if (source.line, source.column) in hashed:
                continue
            if strict is None:
                strict = has_strict_length_guard(flow.nodes)
            if strict:
                break
            yield finding_at(
                "py-unbounded-body-read",
                ctx.file.source,
                source.line,
                f"{source.api} reads the whole request body into memory and {_STACKS[source.framework]} "
                "sets no body limit: memory grows with what the client sends.",
                column=source.column + 1,
                values={"api": source.api, "stack": _STACKS[source.framework]},
            )
