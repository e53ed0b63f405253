"""Starlette/FastAPI app that reads whole bodies with no body-size limit.

**What it finds.** A ``FastAPI(...)`` or ``Starlette(...)`` application in a project that reads
whole request bodies (``await request.body()``, ``await request.json()``, ``request.stream()``)
while no limiting middleware is installed (no ``add_middleware``/``Middleware`` whose class or
options mention a limit, a size, ``max_body`` or a guard).

**Why it matters.** Neither Starlette nor uvicorn limits request bodies: ``await request.body()``
holds whatever the client sends, chunked included, and FastAPI's body parameters read the same way.

**Not reported.** Projects that install a limiting middleware (hmacguard's ASGI guard, or one of
your own whose name says so). A proxy limit (nginx ``client_max_body_size``) is outside the Python
sources: the nginx rule checks it separately.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="starlette-body-limit",
    title="Starlette/FastAPI app reads whole bodies with no body-size limit",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Install a body-size-limiting ASGI middleware (such as hmacguard's guard) that "
    "counts bytes as they arrive and answers 413, and read the body through it.",
    trigger=any_of("FastAPI", "Starlette"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    path = ctx.file.path
    reads = facts.starlette_reads_for(path)
    if facts.starlette_capped(path) or not reads:
        return
    first = reads[0]
    for app in facts.starlette_apps:
        if app.path != ctx.file.path:
            continue
        yield finding_at(
            "starlette-body-limit",
            ctx.file.source,
            app.line,
            f"This {app.what.rstrip('()')} app reads whole request bodies ({first.what} at "
            f"{first.path}:{first.line}) and installs no body-size limit: any size is accepted.",
            values={"reads": len(reads), "first_read": f"{first.path}:{first.line}"},
            stack="FastAPI/Starlette: app.add_middleware(<body limit middleware>, max_body_size=...)",
        )
