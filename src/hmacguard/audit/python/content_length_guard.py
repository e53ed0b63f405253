"""Content-Length check that a chunked request skips.

**What it finds.** A size check written so that it only runs when the client sent a
Content-Length, in a Flask, Starlette/FastAPI or aiohttp handler whose framework cap is absent:

.. code-block:: python

    if request.content_length and request.content_length > 1024 * 1024:   # seed 000's "fix"
        abort(413)
    if request.content_length is not None and request.content_length > LIMIT: ...
    if int(request.headers.get("Content-Length", 0)) > LIMIT: ...

A chunked request (``Transfer-Encoding: chunked``) has no Content-Length: the condition is false,
the check is skipped, and whatever the handler reads next is unbounded.

**Not reported.** Checks that refuse a missing length (``content_length is None or ... > LIMIT``),
handlers that also count the bytes they read and stop at the limit, Flask projects that set
``MAX_CONTENT_LENGTH`` (Werkzeug ≥ 2.3 enforces it on the stream, chunked included), and Django
(under WSGI Django reads a body without Content-Length as empty; its ASGI handler is covered by
``django-asgi-body-limit-bypass``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.guards import find_length_guards, loop_is_counted
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_WORDS = ("content_length", "Content-Length", "content-length", "CONTENT_LENGTH")


def _framework_uncapped(ctx: PyContext) -> str | None:
    """The framework whose cap is absent, or None when the check is moot or covered."""
    fw = ctx.file.frameworks
    if "flask" in fw and ctx.facts.flask_cap(ctx.file.path) in ("unset", "disabled"):
        return "flask"
    if "starlette" in fw and not ctx.facts.starlette_capped(ctx.file.path):
        return "starlette"
    if "aiohttp" in fw and ctx.facts.aiohttp_cap == "disabled":
        return "aiohttp"
    return None


@audit_rule(
    id="py-content-length-guard-bypass",
    title="Content-Length check that a chunked request skips",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Do not trust Content-Length alone: refuse a missing length (411) or count the "
    "bytes while reading and stop at the cap; in Flask set MAX_CONTENT_LENGTH, which Werkzeug "
    "enforces on the stream.",
    trigger=any_of(*_WORDS),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    framework = _framework_uncapped(ctx)
    if framework is None:
        return
    for scope in ctx.scopes(*_WORDS):
        nodes = ctx.file.own_nodes(scope)
        if any(isinstance(n, ast.For | ast.AsyncFor | ast.While) and loop_is_counted(n) for n in nodes):
            continue
        for guard in find_length_guards(nodes):
            if not guard.bypassable:
                continue
            test = ast.unparse(guard.node.test)
            yield finding_at(
                "py-content-length-guard-bypass",
                ctx.file.source,
                guard.node.lineno,
                f"`if {test}` only runs when a Content-Length is sent: a chunked request skips "
                "it and the body that follows is unbounded.",
                column=guard.node.col_offset + 1,
                values={"condition": test, "framework": framework},
            )
