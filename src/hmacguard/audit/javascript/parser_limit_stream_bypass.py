"""A body-parser limit beside an HMAC computed over the raw request stream.

**What it finds.** A file that installs a body parser with a limit (``express.json({limit:
'1mb'})``, ``bodyParser.raw(...)``) and also hashes the raw stream itself
(``req.on('data', chunk => hmac.update(chunk))``) with no byte counter: seed 000's Express "fix".

**Why it matters.** A parser only reads the content types it is configured for (``express.json``:
``application/json``). Any other content type skips the parser *and its limit* and reaches the
``'data'`` handler, which hashes an unbounded stream; for JSON, the parser has already consumed the
stream, so the handler never sees ``'end'`` and the request hangs. The limit looks like protection
and is not.

**Not reported.** Handlers that count bytes and stop at a cap, and parsers configured for every
type (``type: '*/*'``), whose limit does cover the stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.body_parser_limit import parser_calls
from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import string_of, text
from hmacguard.audit.javascript.streams import data_handlers, hmac_names, hmac_updates
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="js-parser-limit-stream-bypass",
    title="Body-parser limit beside an HMAC over the raw stream: other content types bypass it",
    language=Language.JAVASCRIPT,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Verify over the bytes the parser read (express.raw({type: '*/*', limit: '1mb'}) "
    "then hash req.body), or count bytes in the 'data' handler and destroy the request past the "
    "cap; do not rely on a parser's limit for streams it does not read.",
    trigger=all_of(
        any_of("express", "body-parser", "bodyParser"),
        any_of(".json(", ".raw(", ".text(", ".urlencoded("),
        any_of(".update"),
        any_of("'data'", '"data"', "for await"),
    ),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    parsers = [
        (call, name, options)
        for call, name, options in parser_calls(ctx)
        if string_of(options.get("type")) not in ("*/*", "*")
    ]
    if not parsers:
        return
    call, name, options = parsers[0]
    limit = text(options["limit"]) if "limit" in options else "the 100kb default"
    parser_line = int(call.start_point[0]) + 1
    hmacs = hmac_names(ctx.file)
    for handler in data_handlers(ctx.file):
        if handler.counted:
            continue
        for _update in hmac_updates(handler, hmacs):
            yield finding_at(
                "js-parser-limit-stream-bypass",
                ctx.file.source,
                handler.line,
                f"{name}() (line {parser_line}, limit {limit}) only reads the content types it "
                f"parses; this handler hashes {handler.receiver}'s raw stream with no byte limit, "
                "so any other content type is hashed unbounded.",
                column=int(handler.site.start_point[1]) + 1,
                values={"parser": name, "parser_line": parser_line, "limit": limit},
                stack="Express: express.raw({ type: '*/*', limit: '1mb' }) and hash req.body",
            )
            break
