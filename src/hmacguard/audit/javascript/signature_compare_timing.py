"""HMAC digest compared with ``===``/``!==``/``==``/``!=``: a timing side channel.

**What it finds.** A comparison where one side is an HMAC digest (``createHmac(...)...digest()``,
Web Crypto's ``crypto.subtle.sign('HMAC', ...)``, a variable holding one, a string built from one
such as ``'sha256=' + hmac.digest('hex')``, or the
result of a function or method of the file that returns one — ``signBlob(secret, body)``,
``this.sign(body)``) and the other side is not a literal.

**Why it matters.** String equality stops at the first differing character, so response time
leaks how much of a forged signature is right.

**Not reported.** ``crypto.timingSafeEqual`` (after a length check), comparisons with literals,
and plain hashes (``createHash``), which are not secrets.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import FUNCTION_TYPES, Node, member_path, text, walk, walk_own
from hmacguard.audit.javascript.streams import creates_hmac, hmac_names
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
    if (member_path(func) or "").endswith("subtle.sign"):
        return True  # Web Crypto: crypto.subtle.sign("HMAC", key, data) resolves to the MAC
    prop = func.child_by_field_name("property")
    obj = func.child_by_field_name("object")
    if prop is None or obj is None or text(prop) != "digest":
        return False
    return creates_hmac(obj) or (member_path(obj) or "") in hmacs


def _function_name(node: Node) -> str | None:
    """The name a function is called by: declaration, method, or ``const f = () => ...``."""
    name = node.child_by_field_name("name")
    if name is not None:
        return text(name)
    parent = node.parent
    if parent is not None and parent.type in ("variable_declarator", "pair", "assignment_expression"):
        key = (
            parent.child_by_field_name("name")
            or parent.child_by_field_name("key")
            or parent.child_by_field_name("left")
        )
        if key is not None:
            return text(key).rsplit(".", 1)[-1]
    return None


def _returned(function: Node) -> list[Node]:
    """What a function returns: its expression body, or its ``return`` statements' values."""
    body = function.child_by_field_name("body")
    if body is None:
        return []
    if body.type != "statement_block":
        return [body]
    out = []
    for node in walk_own(body):
        if node.type == "return_statement" and node.named_children:
            out.append(node.named_children[0])
    return out


class _Digests:
    """Names (variables, and functions returning one) that carry an HMAC digest in a file."""

    def __init__(self, ctx: JsContext) -> None:
        self.hmacs = hmac_names(ctx.file)
        self.names: set[str] = set()
        self.functions: set[str] = set()
        assignments = []
        functions = []
        for node in walk(ctx.file.root):
            if node.type in ("variable_declarator", "assignment_expression"):
                left = node.child_by_field_name("name") or node.child_by_field_name("left")
                right = node.child_by_field_name("value") or node.child_by_field_name("right")
                if left is not None and right is not None and right.type not in FUNCTION_TYPES:
                    assignments.append((text(left), right))
            elif node.type in FUNCTION_TYPES:
                name = _function_name(node)
                if name is not None:
                    functions.append((name, _returned(node)))
        for _ in range(3):  # names feed names: a few rounds reach a fixed point
            before = len(self.names) + len(self.functions)
            for name, right in assignments:
                if name not in self.names and self.carries(right):
                    self.names.add(name)
            for name, values in functions:
                if name not in self.functions and any(self.carries(v) for v in values):
                    self.functions.add(name)
            if len(self.names) + len(self.functions) == before:
                break

    def carries(self, node: Node) -> bool:
        for n in walk_own(node):
            if _is_digest_call(n, self.hmacs):
                return True
            if n.type == "identifier" and text(n) in self.names:
                return True
            if n.type == "call_expression":
                func = n.child_by_field_name("function")
                path = member_path(func) if func is not None else None
                if path is not None and path.rsplit(".", 1)[-1] in self.functions:
                    return True
        return False


def _is_length(node: Node) -> bool:
    """``expected.length``: comparing lengths leaks nothing secret."""
    path = member_path(node) or ""
    return path.endswith((".length", ".byteLength"))


def _literal(node: Node) -> bool:
    if node.type == "unary_expression" and text(node).startswith("void"):
        return True  # void 0: minifiers' undefined
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
    trigger=all_of(any_of("createHmac", "subtle.sign"), any_of("==")),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    digests = _Digests(ctx)
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
        if not (digests.carries(left) or digests.carries(right)):
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
