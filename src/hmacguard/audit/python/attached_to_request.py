"""Raw body or signature attached to the request object (or Flask's ``g``, or the session).

**What it finds.** ``request.raw_body = body``, ``setattr(request, "signature", sig)``,
``g.payload = body`` and ``request.session["body"] = body``, where the value carries the request
body, a chunk of it or the signature (seed 001's middleware pattern).

**Why it matters.** Whatever is attached lives as long as the request object, which middleware,
loggers, error reporters and test clients routinely keep beyond the response; a copy stored in the
session is written to the session store and read back on every later request. Seed 001 advises
never attaching the raw body or signature metadata to the request.

**Not reported.** Derived small values (a boolean ``request.signature_ok``, a hash of the body).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.frontend import dotted, is_request_like, string_value
from hmacguard.audit.python.taint import BODY, CHUNK, SIG, Taints
from hmacguard.audit.registry import Language, audit_rule, matches
from hmacguard.findings import Category, Finding, Severity

_ATTACH = r"\b(request|req|g)\.\w+\s*=[^=]|setattr\(|session\["


def _what(taints: Taints) -> str | None:
    kinds = {t.kind for t in taints}
    if BODY in kinds or CHUNK in kinds:
        return "the raw body"
    if SIG in kinds:
        return "the signature"
    return None


def _holder(ctx: PyContext, node: ast.AST) -> str | None:
    """``request``/``g``/``request.session`` when ``node`` is one of them."""
    if is_request_like(node):
        return dotted(node)
    if ctx.file.qualified(node) == "flask.g":
        return "g"
    if isinstance(node, ast.Attribute) and node.attr == "session" and is_request_like(node.value):
        return dotted(node)
    return None


@audit_rule(
    id="py-body-attached-to-request",
    title="Raw body or signature attached to the request, g or the session",
    language=Language.PYTHON,
    category=Category.MEMORY_LEAK,
    severity=Severity.MEDIUM,
    cwe=(401,),
    remediation="Pass the verified body to the code that needs it as a local value; attach at "
    "most a small derived result (a boolean, the delivery id, a hash) to the request.",
    trigger=matches(_ATTACH),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for scope in ctx.scopes(pattern=re.compile(_ATTACH)):
        flow = ctx.flow(scope)
        for node in flow.nodes:
            target: ast.AST | None = None
            value: ast.AST | None = None
            label = ""
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                if isinstance(target, ast.Attribute):
                    holder = _holder(ctx, target.value)
                    label = f"{holder}.{target.attr}" if holder else ""
                elif isinstance(target, ast.Subscript):
                    holder = _holder(ctx, target.value)
                    label = f"{holder}[...]" if holder and holder.endswith("session") else ""
            elif isinstance(node, ast.Call) and dotted(node.func) == "setattr" and len(node.args) == 3:
                holder = _holder(ctx, node.args[0])
                value = node.args[2]
                label = f"{holder}.{string_value(node.args[1]) or '<name>'}" if holder else ""
            if not label or value is None:
                continue
            what = _what(flow.taint(value))
            if what is None:
                continue
            yield finding_at(
                "py-body-attached-to-request",
                ctx.file.source,
                int(getattr(node, "lineno", 0)),
                f"{what.capitalize()} is attached as {label}: it lives as long as that object "
                "and anything holding it.",
                column=int(getattr(node, "col_offset", 0)) + 1,
                values={"attached_as": label, "kept": what},
            )
