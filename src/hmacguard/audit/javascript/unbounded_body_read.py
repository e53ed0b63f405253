"""Request body read whole in one call with no limit: raw-body, collectors, Fetch API, Hono.

**What it finds.** Whole-body reads with no limit — high severity in a file that computes or
verifies a signature (``createHmac``, ``crypto.subtle``, ``timingSafeEqual``, a ``signature``
header, ``constructEvent``...), medium elsewhere (an unbounded body is a memory risk with or
without an HMAC):

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
(``req.pipe(hmac)`` streams). Fetch-API reads in files that verify no signature and are not
webhook receivers (no "webhook" in their path or text): every API route of a Next.js app reads its
JSON that way, and those are left to a proxy or platform limit.
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
from hmacguard.audit.registry import Language, any_of, audit_rule
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
    trigger=any_of(*_READ_WORDS),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    text = ctx.file.source.text
    signed = SIGNATURE_WORDS.search(text) is not None
    webhook = "webhook" in ctx.file.path.lower() or "webhook" in text.lower()
    hono_cap = hono_limited(ctx.file)
    for read in body_reads(ctx.file):
        if read.kind == "hono" and hono_cap:
            continue
        if read.kind == "fetch" and not (signed or webhook):
            continue
        if strictly_guarded(read.node):
            continue
        where = "in a file that verifies a signature over it" if signed else "(no signature involved)"
        yield finding_at(
            "js-unbounded-body-read",
            ctx.file.source,
            read.line,
            f"`{read.what}` reads the whole request body into memory with no size limit, {where}.",
            column=read.column,
            severity=Severity.HIGH if signed else Severity.MEDIUM,
            values={"read": read.what, "api": read.kind, "signature": signed},
            stack=_STACK[read.kind],
        )
