"""Signature compared with ``==``, ``!=`` or ``in``: a timing side channel.

**What it finds.** A comparison whose one side is an HMAC digest (``hmac.new(...).hexdigest()``,
``hmac.digest(...)``, a project function returning one) and whose other side is not a constant,
or whose one side is a signature taken from a request header and whose other side is computed by
a function named like a signer (``compute_signature(body)``). ``in`` compares with ``==`` too
(``expected in signatures``).

**Why it matters.** ``==`` on strings and bytes returns at the first differing byte, so the time
it takes leaks how much of a guessed signature is right; a forger can learn it byte by byte.

**Not reported.** ``hmac.compare_digest``/``secrets.compare_digest``, and comparisons with
constants (``signature == ""``, ``parts[0] != "sha256"``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import is_signature_key, last_name
from hmacguard.audit.python.taint import DIGEST, SIG, looks_like_verifier
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_constant(e) for e in node.elts)
    return False


def _signer_like(flow: Flow, node: ast.AST) -> bool:
    """A value computed by a signer-named call, directly or through a signer-named variable."""
    if isinstance(node, ast.Call):
        return looks_like_verifier(node) and last_name(node.func) not in ("get", "getheader")
    if isinstance(node, ast.Name) and is_signature_key(node.id):
        return not any(t.kind == SIG for t in flow.taint(node)) and any(
            isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
            and isinstance(n.value, ast.Call)
            and _signer_like(flow, n.value)
            for n in flow.nodes
        )
    return False


@audit_rule(
    id="py-signature-compare-timing",
    title="Signature compared with ==, != or in (not constant-time)",
    language=Language.PYTHON,
    category=Category.CRYPTOGRAPHY,
    severity=Severity.MEDIUM,
    cwe=(208,),
    owasp="API2:2023 Broken Authentication",
    remediation="Compare signatures with hmac.compare_digest(expected, received) after checking "
    "that the received value is present and a str/bytes of the expected form.",
    trigger=all_of(any_of("hmac", "digest", "sig", "Sig", "SIG"), any_of("==", "!=", " in ")),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    for scope in ctx.scopes("hmac", "digest", "sig", "Sig", "SIG"):
        flow = ctx.flow(scope)
        for node in flow.nodes:
            if not isinstance(node, ast.Compare) or len(node.ops) != 1:
                continue
            if not isinstance(node.ops[0], _OPS):
                continue
            left, right = node.left, node.comparators[0]
            if _constant(left) or _constant(right):
                continue
            lt, rt = flow.taint(left), flow.taint(right)
            digest = any(t.kind == DIGEST for t in lt | rt)
            confidence = "high"
            if not digest:
                left_sig = any(t.kind == SIG for t in lt)
                right_sig = any(t.kind == SIG for t in rt)
                if not ((left_sig and _signer_like(flow, right)) or (right_sig and _signer_like(flow, left))):
                    continue
                confidence = "medium"
            op = {ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in"}[type(node.ops[0])]
            yield finding_at(
                "py-signature-compare-timing",
                ctx.file.source,
                node.lineno,
                f"A signature is compared with `{op}`, which stops at the first differing byte "
                "and leaks timing.",
                column=node.col_offset + 1,
                values={"operator": op, "expression": ast.unparse(node)[:120]},
                confidence=confidence,
            )
