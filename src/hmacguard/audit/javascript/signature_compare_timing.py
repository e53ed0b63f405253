"""HMAC digest compared with ``===``/``!==``/``==``/``!=``: a timing side channel.

**What it finds.** A comparison where one side is an HMAC digest (``createHmac(...)...digest()``,
a variable holding one, or a string built from one such as ``'sha256=' + hmac.digest('hex')``) and
the other side is not a literal.

**Why it matters.** String equality stops at the first differing character, so response time
leaks how much of a forged signature is right.

**Not reported.** ``crypto.timingSafeEqual`` (after a length check), comparisons with literals,
and plain hashes (``createHash``), which are not secrets.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import Node, member_path, text, walk
from hmacguard.audit.javascript.streams import hmac_names
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_EQUALITY = frozenset({"===", "!==", "==", "!="})
_LITERALS = frozenset({"string", "number", "null", "undefined", "true", "false", "template_string"})


def _is_digest_call(node: Node, hmacs: set[str]) -> bool:
    if node.type != "call_expression":
        return False
    func = node.child_by_field_name("function")
    if func is None or func.type != "member_expression":
        return False
    prop = func.child_by_field_name("property")
    obj = func.child_by_field_name("object")
    if prop is None or obj is None or text(prop) != "digest":
        return False
    return "createHmac" in text(obj) or (member_path(obj) or "") in hmacs


def _digest_names(ctx: JsContext, hmacs: set[str]) -> set[str]:
    names: set[str] = set()
    assignments = []
    for node in walk(ctx.file.root):
        if node.type in ("variable_declarator", "assignment_expression"):
            left = node.child_by_field_name("name") or node.child_by_field_name("left")
            right = node.child_by_field_name("value") or node.child_by_field_name("right")
            if left is not None and right is not None:
                assignments.append((text(left), right))
    for _ in range(3):
        for name, right in assignments:
            if name not in names and _carries_digest(right, hmacs, names):
                names.add(name)
    return names


def _carries_digest(node: Node, hmacs: set[str], names: set[str]) -> bool:
    for n in walk(node):
        if _is_digest_call(n, hmacs):
            return True
        if n.type == "identifier" and text(n) in names:
            return True
    return False


def _is_length(node: Node) -> bool:
    """``expected.length``: comparing lengths leaks nothing secret."""
    path = member_path(node) or ""
    return path.endswith((".length", ".byteLength"))


def _literal(node: Node) -> bool:
    if node.type == "template_string":
        return not any(c.type == "template_substitution" for c in node.children)
    return node.type in _LITERALS or (node.type == "identifier" and text(node) == "undefined")


@audit_rule(
    id="js-signature-compare-timing",
    title="HMAC digest compared with === or == (not constant-time)",
    language=Language.JAVASCRIPT,
    category=Category.CRYPTOGRAPHY,
    severity=Severity.MEDIUM,
    cwe=(208,),
    owasp="API2:2023 Broken Authentication",
    remediation="Compare with crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(given)) "
    "after checking that both have the same length.",
    trigger=all_of(any_of("createHmac"), any_of("==")),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    hmacs = hmac_names(ctx.file)
    digests = _digest_names(ctx, hmacs)
    for node in walk(ctx.file.root):
        if node.type != "binary_expression":
            continue
        op = node.child_by_field_name("operator")
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if op is None or left is None or right is None or text(op) not in _EQUALITY:
            continue
        if _literal(left) or _literal(right) or _is_length(left) or _is_length(right):
            continue
        if not (_carries_digest(left, hmacs, digests) or _carries_digest(right, hmacs, digests)):
            continue
        yield finding_at(
            "js-signature-compare-timing",
            ctx.file.source,
            int(node.start_point[0]) + 1,
            f"An HMAC digest is compared with `{text(op)}`, which stops at the first differing "
            "character and leaks timing.",
            column=int(node.start_point[1]) + 1,
            values={"operator": text(op), "expression": text(node)[:120]},
        )
