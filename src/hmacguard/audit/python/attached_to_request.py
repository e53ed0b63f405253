"""Raw body or signature attached to the request object (or Flask's ``g``, or the session).

**What it finds.** Seed 001's middleware pattern — a middleware (or view) that verifies and
attaches the raw body or the signature to the request — in every shape Django, Flask and Starlette
middleware takes: ``request.raw_body = body``, ``setattr(request, "signature", sig)``,
``request.META["raw_body"] = body`` (Django function or class middleware, ``MiddlewareMixin``),
``g.payload = body`` (Flask ``before_request``), ``request.state.body = body`` (Starlette
``BaseHTTPMiddleware``), ``scope["raw_body"] = body`` (pure ASGI middleware that collects
``receive()`` messages), ``environ["raw_body"] = body`` (WSGI middleware), and
``request.session["body"] = body`` — where the value carries the request body, a chunk of it or the
signature.

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

_ATTACH = (
    r"\b(request|req|g)(\.\w+)*\.\w+\s*=[^=]|\b(request|req)(\.\w+)*\[[^\]]+\]\s*=[^=]"
    r"|\b(scope|environ)\[[^\]]+\]\s*=[^=]|setattr\(|session\["
)
#: Mappings that travel with the request: what is stored in them lives as long as it does.
_REQUEST_MAPPINGS = frozenset({"META", "environ", "scope", "session", "state", "COOKIES"})


def _what(taints: Taints) -> str | None:
    kinds = {t.kind for t in taints}
    if BODY in kinds or CHUNK in kinds:
        return "the raw body"
    if SIG in kinds:
        return "the signature"
    return None


def _holder(ctx: PyContext, node: ast.AST) -> str | None:
    """``request``/``g``/``request.session``/``request.state``/``scope``/``environ`` when
    ``node`` is one of them (an object or mapping that lives as long as the request)."""
    if is_request_like(node):
        return dotted(node)
    if ctx.file.qualified(node) == "flask.g":
        return "g"
    if isinstance(node, ast.Attribute) and node.attr in _REQUEST_MAPPINGS and is_request_like(node.value):
        return dotted(node)
    if isinstance(node, ast.Name) and node.id in ("scope", "environ"):
        return node.id
    return None


def _key(target: ast.Subscript) -> str:
    key = string_value(target.slice)
    return repr(key) if key is not None else "..."


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
                    mapping = holder is not None and holder.rsplit(".", 1)[-1] in _REQUEST_MAPPINGS
                    label = f"{holder}[{_key(target)}]" if mapping else ""
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
