"""Werkzeug version that does not enforce ``MAX_CONTENT_LENGTH`` while streaming.

**What it finds.** An exact pin of Werkzeug older than 2.3.0.

**Why it matters.** Before 2.3, ``max_content_length`` (Flask's ``MAX_CONTENT_LENGTH``) was
checked only when parsing form data, and only against the Content-Length header; ``get_data()``,
``request.data`` and ``request.stream`` read any size, and chunked requests were never limited
(pallets/werkzeug#1096). Werkzeug 2.3.0 checks the limit when the stream is accessed and while
reading from it (pallets/werkzeug#2620). On an older pin, setting ``MAX_CONTENT_LENGTH`` gives a
false sense of safety.

**Not reported.** Version ranges, and 2.3.0 or later.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.config.context import RequirementsContext
from hmacguard.audit.config.requirements import version_tuple
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity


@audit_rule(
    id="werkzeug-streaming-limit-bypass",
    title="Werkzeug < 2.3 does not enforce MAX_CONTENT_LENGTH while streaming",
    language=Language.REQUIREMENTS,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(770,),
    remediation="Upgrade Werkzeug to 2.3 or later (with a Flask that supports it) so that "
    "MAX_CONTENT_LENGTH bounds get_data(), request.data and request.stream, chunked included.",
    trigger=any_of("werkzeug", "Werkzeug"),
)
def check(ctx: RequirementsContext) -> Iterator[Finding]:
    for pin in ctx.file.find("werkzeug"):
        if version_tuple(pin.version) >= (2, 3, 0):
            continue
        yield finding_at(
            "werkzeug-streaming-limit-bypass",
            ctx.file.source,
            pin.line,
            f"Werkzeug {pin.version} checks MAX_CONTENT_LENGTH only for form parsing with a "
            "Content-Length: get_data() and request.stream read any size, chunked bodies included.",
            values={"version": pin.version, "fixed_in": "2.3.0"},
        )
