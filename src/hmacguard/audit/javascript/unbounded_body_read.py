"""Request body read whole in one call with no limit: raw-body, collectors, Fetch API, Hono.

**What it finds.** In a file that computes or verifies a signature (``createHmac``,
``crypto.subtle``, ``timingSafeEqual``, a ``signature`` header, ``constructEvent``...):

- ``getRawBody(req)`` / ``rawBody(req, 'utf8')`` from ``raw-body`` without a ``limit`` option —
  raw-body's own default is no limit (body-parser is what passes it 100 kb);
- the request piped into a buffering collector (``req.pipe(concat(...))``, ``req.pipe(bl(...))``)
  or handed to ``stream/consumers`` (``await text(req)``, ``buffer(req)``, ``json(req)``);
- Fetch-API reads ``await request.text()`` / ``arrayBuffer()`` / ``json()`` / ``formData()`` /
  ``blob()`` (Next.js route handlers, Remix actions, worker ``fetch`` handlers), and Hono's
  ``c.req.json()`` / ``text()`` / ``arrayBuffer()`` / ``parseBody()`` / ``formData()``.

**Why it matters.** Each reads the entire body into memory before the signature can be checked,
however large the client makes it, chunked included: Next.js route handlers, Hono and Remix set no
body limit of their own, and worker platforms allow 100 MB or more.

**Not reported.** raw-body with a ``limit``; Hono apps that install ``bodyLimit()``; reads after
a strict Content-Length check (one that also refuses a missing header); SvelteKit ``+server``
routes (adapter-node's ``BODY_SIZE_LIMIT`` is 512 KB by default); piping the request into an HMAC
(``req.pipe(hmac)`` streams). Files that verify no signature are left to the framework rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.body_reads import (
    SIGNATURE_WORDS,
    body_reads,
    hono_limited,
    strictly_guarded,
)
from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule, matches
from hmacguard.findings import Category, Finding, Severity

_READ_WORDS = (
    "getRawBody", "raw-body", ".pipe(", "consumers", ".text()", ".json()", ".arrayBuffer()",
    ".formData()", ".blob()", ".parseBody()",
)  # fmt: skip
_READ_WORDS = (
    "getRawBody", "raw-body", ".pipe(", "consumers", ".text()", ".json()", ".arrayBuffer()",
    ".formData()", ".blob()", ".parseBody()",
)  # fmt: skip
_STACK = {
    "raw-body": "raw-body: getRawBody(req, { limit: '1mb' }) (413 past it)",
    "collector": "Node: count bytes as chunks arrive and stop past a cap, or raw-body with a limit",
    "fetch": "Fetch API: check Content-Length strictly (refuse a missing one) or read request.body "
    "with a counting reader that stops past a cap",
    "hono": "Hono: app.use(bodyLimit({ maxSize: 1024 * 1024 })) before the route",
}


@audit_rule(
    id="js-unbounded-body-read",
    title="Request body read whole in one call with no limit (raw-body, collectors, Fetch API, Hono)",
    language=Language.JAVASCRIPT,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Cap the body before buffering it: raw-body's limit option, Hono's bodyLimit(), or a "
    "counting reader over request.body that stops past the cap (413); feed the HMAC per chunk.",
    trigger=all_of(any_of(*_READ_WORDS), matches(SIGNATURE_WORDS.pattern)),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    hono_cap = hono_limited(ctx.file)
    for read in body_reads(ctx.file):
        if read.kind == "hono" and hono_cap:
            continue
        if strictly_guarded(read.node):
            continue
        yield finding_at(
            "js-unbounded-body-read",
            ctx.file.source,
            read.line,
            f"`{read.what}` reads the whole request body into memory with no size limit, in a "
            "file that verifies a signature over it.",
            column=read.column,
            values={"read": read.what, "api": read.kind},
            stack=_STACK[read.kind],
        )
