"""``compare_digest`` given a value that is None when the signature header is missing.

**What it finds.** ``hmac.compare_digest(a, b)`` (or ``secrets.compare_digest``) where an argument
comes from ``request.headers.get(name)``, ``request.META.get(name)`` or ``environ.get(name)``
without a default, and no ``is None``/truthiness/``isinstance`` check on it precedes the call.
Seed 001's streaming example does exactly this:
``hmac.compare_digest(computed, request.META.get("HTTP_X_SIGNATURE"))``.

**Why it matters.** ``compare_digest(str, None)`` raises ``TypeError``: a request without the
header becomes an unhandled 500 (and an error report) instead of a clean 400, which any client can
trigger at will.

**Not reported.** ``.get(name, "")`` (a default), ``.get(name) or ""``, and values checked before
the call (``if signature is None: return ...``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import dotted, last_name
from hmacguard.audit.python.taint import MAYBE_NONE
from hmacguard.audit.registry import Language, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_COMPARES = frozenset({"hmac.compare_digest", "secrets.compare_digest", "_hmac.compare_digest"})


def _checked_names(flow: Flow, before: int) -> set[str]:
    """Names tested for None/truthiness (or isinstance) in a condition before line ``before``."""
    names: set[str] = set()
    for node in flow.nodes:
        test: ast.AST | None = None
        if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
            test = node.test
        elif isinstance(node, ast.BoolOp):
            test = node
        if test is None or getattr(node, "lineno", before) > before:
            continue
        for part in ast.walk(test):
            if isinstance(part, ast.Compare) and isinstance(part.left, ast.Name):
                names.add(part.left.id)
            elif isinstance(part, ast.UnaryOp) and isinstance(part.operand, ast.Name):
                names.add(part.operand.id)
            elif (
                isinstance(part, ast.Call)
                and last_name(part.func) == "isinstance"
                and part.args
                and isinstance(part.args[0], ast.Name)
            ):
                names.add(part.args[0].id)
        if isinstance(test, ast.Name):
            names.add(test.id)
        if isinstance(test, ast.BoolOp):
            names |= {v.id for v in test.values if isinstance(v, ast.Name)}
    return names


@audit_rule(
    id="py-compare-digest-none",
    title="compare_digest given a value that is None when the header is missing",
    language=Language.PYTHON,
    category=Category.INPUT_VALIDATION,
    severity=Severity.LOW,
    cwe=(754,),
    remediation="Read the header with a check first: if it is missing or malformed answer 400, "
    "then compare_digest(expected, received) with two str (or two bytes).",
    trigger=any_of("compare_digest"),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for scope in ctx.scopes("compare_digest"):
        flow = ctx.flow(scope)
        for node in flow.nodes:
            if not isinstance(node, ast.Call):
                continue
            qualified = ctx.file.qualified(node.func) or ""
            if qualified not in _COMPARES and not qualified.endswith(".compare_digest"):
                continue
            checked: set[str] | None = None
            for arg in node.args[:2]:
                sources = [t for t in flow.taint(arg) if t.kind == MAYBE_NONE]
                if not sources:
                    continue
                if isinstance(arg, ast.Name):
                    if checked is None:
                        checked = _checked_names(flow, node.lineno)
                    if arg.id in checked:
                        continue
                yield finding_at(
                    "py-compare-digest-none",
                    ctx.file.source,
                    node.lineno,
                    f"{sources[0].api} is None when the header is missing, and "
                    f"{dotted(node.func) or 'compare_digest'}() then raises TypeError (a 500).",
                    column=node.col_offset + 1,
                    values={"value": sources[0].api, "line_of_value": sources[0].line},
                )
                break
