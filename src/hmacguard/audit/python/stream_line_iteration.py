"""Request stream iterated by lines: a body without newlines arrives as one huge "chunk".

**What it finds.** ``for chunk in request.stream:`` (Flask/Werkzeug), ``for line in request:``
(Django) and ``request.stream.readline()``. Iterating a file-like stream yields *lines*, not
bounded chunks: a body with no newline is read whole into one ``bytes`` object before the loop
body runs even once. Seed 000's Flask "fix" streams this way and so still buffers everything.

**Not reported.** Bounded reads (``request.stream.read(65536)`` in a loop), Starlette's
``request.stream()`` (which yields the server's chunks), and Flask projects that set
``MAX_CONTENT_LENGTH`` (Werkzeug ≥ 2.3 limits the stream itself).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.taint import CHUNK, Taint
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_WORDS = ("stream", "readline", "in request", "in req")


def _applies(ctx: PyContext, source: Taint) -> bool:
    if not source.framework.endswith("-lines"):
        return False
    if source.framework.startswith("flask"):
        return ctx.facts.flask_cap(ctx.file.path) in ("unset", "disabled")
    return True


@audit_rule(
    id="py-stream-line-iteration",
    title="Request stream read line by line: a body without newlines is buffered whole",
    language=Language.PYTHON,
    category=Category.DOS_POTENTIAL,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Read fixed-size chunks (stream.read(65536)) in a loop, count the bytes and stop "
    "at the cap; never iterate the request stream or call readline() on it.",
    trigger=any_of(*_WORDS),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for scope in ctx.scopes(*_WORDS):
        flow = ctx.flow(scope)
        for node in flow.nodes:
            if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                taints = flow.iter_taint(node.iter)
                where = node.iter
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr != "readline":
                    continue
                taints = flow.taint(node)
                where = node
            else:
                continue
            for source in taints:
                if source.kind == CHUNK and _applies(ctx, source):
                    line = getattr(node, "lineno", where.lineno)
                    yield finding_at(
                        "py-stream-line-iteration",
                        ctx.file.source,
                        line,
                        f"{source.api} yields lines, not bounded chunks: a body without a "
                        "newline is read into memory whole.",
                        column=where.col_offset + 1,
                        values={"api": source.api, "framework": source.framework},
                    )
                    break
