"""Starlette/FastAPI app reads whole bodies with no body-size limit.

**What it finds.** A whole-body read — ``await request.body()``, ``await request.json()``,
``await request.form()``, or a ``request.stream()`` loop that keeps its chunks without counting
them — in an application that installs no body-size limit. The finding points at the read and
names the application it runs in.

Facts are scoped to each application object: a read belongs to the app (or the router included
into it) its handler is registered on; a sub-application mounted under a parent that installs a
limit is limited; an app with only GET routes reads nothing. A limit is recognised by what the
code does, not by its name: a middleware, an ``app = X(app)`` wrapper, or a wrapper around one
handler that reads ASGI ``receive()`` messages (or ``call_next`` requests) and answers 413 past a
size. A ``client_max_body_size`` in an nginx file of the repository that proxies to the app, or a
capped WSGI server in its start commands, also counts.

**Why it matters.** Neither Starlette nor uvicorn limits request bodies: ``await request.body()``
holds whatever the client sends, chunked included, and FastAPI's body parameters read the same way.

**Not reported.** Reads in apps (or handlers) with a limit as above; ``request.stream()`` loops
that count bytes and stop, or that hash each chunk without keeping it.
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
    trigger=any_of("fastapi", "starlette"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    facts = ctx.facts
    if facts.server_cap() in ("ok", "high") or facts.proxy_cap() in ("ok", "high"):
        return
    apps = facts.starlette
    reported: set[str] = set()
    for read in apps.reads_in(ctx.file.path):
        if apps.read_capped(read):
            continue
        owners = apps.apps_of(read)
        if not owners:
            continue
        fresh = [a for a in owners if a.key not in reported]
        if not fresh:
            continue  # one finding per application and module: its first uncapped read
        reported.update(a.key for a in owners)
        app = fresh[0]
        where = f"{app.kind} app `{app.name or '<unnamed>'}` ({app.path}:{app.line})"
        yield finding_at(
            "starlette-body-limit",
            ctx.file.source,
            read.line,
            f"`{read.what}` reads the whole request body in the {where}, which installs no "
            "body-size limit: any size is accepted.",
            column=read.column + 1,
            values={"read": read.what, "app": f"{app.path}:{app.line}"},
            stack="FastAPI/Starlette: app.add_middleware(<body limit middleware>, max_body_size=...)",
        )
