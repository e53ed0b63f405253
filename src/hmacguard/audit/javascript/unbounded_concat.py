"""Request body accumulated chunk by chunk with no byte counter.

**What it finds.** In a ``req.on('data', ...)`` handler or a ``for await (const chunk of req)``
loop: ``body += chunk``, ``body = body + chunk``, ``chunks.push(chunk)``,
``body = Buffer.concat([body, chunk])``, or ``req.on('data', chunks.push.bind(chunks))`` — when
the handler compares no byte count against a limit before stopping the stream.

**Why it matters.** Every chunk is kept until the body ends, so memory grows with whatever the
client sends; ``body += chunk`` on strings costs more than the body itself (seed 000's Express
endpoint). Express does not limit a body its parsers do not read.

**Not reported.** Handlers that count (``received += chunk.length; if (received > LIMIT) {
req.destroy(); ... }``), and ``res.on('data')`` (an outgoing request's response).
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.streams import accumulations, data_handlers
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="js-unbounded-body-concat",
    title="Request body accumulated chunk by chunk with no byte counter",
    language=Language.JAVASCRIPT,
    category=Category.DOS_POTENTIAL,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Count bytes as chunks arrive and stop past a cap (req.destroy() and 413), or use "
    "express.raw({type: '*/*', limit: '1mb'}) / raw-body with a limit; feed the HMAC per chunk "
    "instead of keeping the body.",
    trigger=any_of("'data'", '"data"', "`data`", "for await"),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    for handler in data_handlers(ctx.file):
        if handler.counted:
            continue
        for node, what in accumulations(handler):
            line = int(node.start_point[0]) + 1
            yield finding_at(
                "js-unbounded-body-concat",
                ctx.file.source,
                line,
                f"`{what}` keeps every chunk of {handler.receiver} with no byte limit: the whole "
                "body is buffered, however large.",
                column=int(node.start_point[1]) + 1,
                values={"accumulation": what, "stream": handler.receiver},
                stack="Express: express.raw({ type: '*/*', limit: '1mb' })",
            )
            break
