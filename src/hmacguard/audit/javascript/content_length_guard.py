"""Content-Length check that a chunked request skips (JavaScript).

**What it finds.** The twin of ``py-content-length-guard-bypass``: an ``if`` that compares the
Content-Length header with a limit and leaves (``return``, ``throw``, 413), in a function that then
reads the whole body (``await request.text()``, ``getRawBody(req)``, ``req.on('data')``
accumulation..., directly or through a function of the same file it calls), when no check in that
function refuses a *missing* header::

    const contentLength = req.headers.get('content-length');
    if (contentLength && Number(contentLength) > MAX) return new Response(null, { status: 413 });
    if (parseInt(req.headers['content-length'], 10) > MAX) return res.status(413).end();

A chunked request has no Content-Length: ``undefined > MAX`` and ``NaN > MAX`` are false, the check
is skipped, and the read that follows is unbounded.

**Not reported.** Checks that refuse a missing length (``if (!contentLength || ...)``,
``Number.isNaN(length)``); functions that count bytes as they read and stop at a limit.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.body_reads import body_reads, length_guards
from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import FUNCTION_TYPES, enclosing_function, text, walk
from hmacguard.audit.javascript.streams import accumulations, data_handlers
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="js-content-length-guard-bypass",
    title="Content-Length check that a chunked request skips (JavaScript)",
    language=Language.JAVASCRIPT,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Refuse a missing Content-Length too (if (!len || Number(len) > MAX) -> 411/413), or "
    "count bytes while reading and stop past the cap, which holds for chunked bodies as well.",
    trigger=any_of("content-length", "Content-Length", "contentLength", "content_length"),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    readers: dict[int, str] = {}
    for read in body_reads(ctx.file):
        function = enclosing_function(read.node)
        if function is not None:
            readers.setdefault(function.id, read.what)
    for handler in data_handlers(ctx.file):
        if handler.counted:
            continue
        for _, what in accumulations(handler):
            function = enclosing_function(handler.site)
            if function is not None:
                readers.setdefault(function.id, f"{handler.receiver}.on('data') {what}")
    # A handler that checks the header and then calls a helper of the file that reads the body
    # (parseBody(req) after the check) reads it too.
    by_name = {}
    for function in walk(ctx.file.root):
        if function.type in FUNCTION_TYPES and function.id in readers:
            name = function.child_by_field_name("name")
            if name is not None:
                by_name[text(name)] = readers[function.id]
    if by_name:
        for function in walk(ctx.file.root):
            if function.type not in FUNCTION_TYPES or function.id in readers:
                continue
            for node in walk(function):
                callee = node.child_by_field_name("function") if node.type == "call_expression" else None
                if callee is not None and callee.type == "identifier" and text(callee) in by_name:
                    readers[function.id] = f"{text(callee)}(...) ({by_name[text(callee)]})"
                    break
    seen: set[int] = set()
    for function in walk(ctx.file.root):
        if function.type not in FUNCTION_TYPES or function.id not in readers:
            continue
        for guard in length_guards(function):
            if not guard.bypassable or guard.node.id in seen:
                continue
            seen.add(guard.node.id)
            yield finding_at(
                "js-content-length-guard-bypass",
                ctx.file.source,
                int(guard.node.start_point[0]) + 1,
                "This Content-Length check is skipped when the header is missing (a chunked "
                f"request), so `{readers[function.id]}` that follows reads an unbounded body.",
                column=int(guard.node.start_point[1]) + 1,
                values={"read": readers[function.id]},
            )
