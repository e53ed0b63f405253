"""Request body, signature or headers kept in a module-level array, map or set (JavaScript).

**What it finds.** The twin of ``py-body-retained-global``: inside a function, a value carrying the
request body, a raw chunk, the signature or the header object stored in a container declared at
module level — ``events.push(req.body)``, ``seen.set(id, rawBody)``, ``log.unshift({ body, sig })``,
``cache[id] = payload`` — where the value is the request's ``body``/``rawBody``/``headers``, the
request itself, a signature header, or a local variable assigned from one of them or from a
whole-body read (``await request.text()``, ``Buffer.concat(chunks)``, ``getRawBody(req)``).

**Why it matters.** A module-level container lives as long as the process: every request adds
an entry that is never released, and memory grows with traffic (seed 001, in Node).

**Not reported.** Containers the file also trims (``shift``, ``pop``, ``splice``, ``delete``,
``clear``, assigning ``length``), small derived values (``req.body.id``, a hash of the body), and
module-level code, which runs once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hmacguard.audit.javascript.body_reads import body_reads, request_like
from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import (
    JsFile,
    Node,
    call_args,
    enclosing_function,
    member_path,
    text,
    walk,
)
from hmacguard.audit.javascript.streams import data_handlers
from hmacguard.audit.model import finding_at
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_ADDERS = frozenset({"push", "unshift", "set", "add"})
_TRIMMERS = ("shift(", "pop(", "splice(", "delete(", "clear(", "length =", "length=")
_BODY_ATTRS = frozenset({"body", "rawBody", "raw_body", "headers", "payload", "rawPayload"})
_SIG_HEADER = re.compile(r"signature|hmac|x-hub|x-.*-sig", re.IGNORECASE)
_WRAPPERS = frozenset(
    {"JSON.stringify", "JSON.parse", "Buffer.from", "Buffer.concat", "String", "structuredClone"}
)
_EMPTY_CONTAINER = re.compile(r"new(Map|Set|Array)?\(\)|Object\.create\(null\)")
_HASHING = re.compile(r"createHash|createHmac|digest|\.length\b|byteLength")


def _containers(file: JsFile) -> dict[str, Node]:
    """Module-level ``const X = []`` / ``new Map()`` / ``{}`` / ``new Set()`` -> declaration."""
    out: dict[str, Node] = {}
    for stmt in file.root.named_children:
        decl = stmt.named_children[0] if stmt.type == "export_statement" and stmt.named_children else stmt
        if decl.type not in ("lexical_declaration", "variable_declaration"):
            continue
        for declarator in decl.named_children:
            if declarator.type != "variable_declarator":
                continue
            name = declarator.child_by_field_name("name")
            value = declarator.child_by_field_name("value")
            if name is None or value is None or name.type != "identifier":
                continue
            shown = text(value).replace(" ", "")
            if (value.type in ("array", "object") and value.named_child_count == 0) or re.fullmatch(
                r"new(Map|Set|Array|WeakRef)?\(\)|Object\.create\(null\)", shown
            ):
                out[text(name)] = declarator
    source = file.source.text
    return {
        name: node
        for name, node in out.items()
        if not any(f"{name}.{trim}" in source for trim in _TRIMMERS)
        and not any(f"{name}.length {op}" in source for op in (">", ">="))
    }


class _Taint:
    """Which local names of one function carry the body, a chunk or the signature."""

    def __init__(self, file: JsFile, function: Node, chunk_names: set[str], read_nodes: set[int]) -> None:
        self.names: set[str] = set(chunk_names)
        self.read_nodes = read_nodes
        declarators = [
            n for n in walk(function) if n.type in ("variable_declarator", "assignment_expression")
        ]
        for _ in range(3):
            for node in declarators:
                left = node.child_by_field_name("name") or node.child_by_field_name("left")
                right = node.child_by_field_name("value") or node.child_by_field_name("right")
                if left is None or right is None:
                    continue
                if self.carries(right):
                    if left.type == "identifier":
                        self.names.add(text(left))
                    elif left.type == "object_pattern":  # const { body } = req
                        for child in walk(left):
                            if child.type == "shorthand_property_identifier_pattern":
                                self.names.add(text(child))
                elif left.type == "object_pattern" and request_like(member_path(right)):
                    for child in walk(left):
                        if (
                            child.type == "shorthand_property_identifier_pattern"
                            and text(child) in _BODY_ATTRS
                        ):
                            self.names.add(text(child))

    def carries(self, node: Node) -> bool:
        if node.type in ("await_expression", "parenthesized_expression") and node.named_child_count:
            return self.carries(node.named_children[-1])
        if node.id in self.read_nodes:
            return True
        if node.type == "identifier":
            return text(node) in self.names
        if node.type in ("member_expression", "subscript_expression"):
            path = member_path(node)
            if path is not None:
                head, _, attr = path.rpartition(".")
                if request_like(path) or (
                    attr in _BODY_ATTRS and (request_like(head) or head.endswith("request"))
                ):
                    return True
            if node.type == "subscript_expression":
                obj = node.child_by_field_name("object")
                index = node.child_by_field_name("index")
                if obj is not None and index is not None and (member_path(obj) or "").endswith("headers"):
                    return bool(_SIG_HEADER.search(text(index)))
            return False
        if node.type == "call_expression":
            func = node.child_by_field_name("function")
            name = text(func) if func is not None else ""
            if _HASHING.search(name):
                return False
            args = call_args(node)
            if name in _WRAPPERS or name.endswith((".toString", ".slice", ".trim")):
                inner = (
                    args[0]
                    if args and name in _WRAPPERS
                    else (func.child_by_field_name("object") if func is not None else None)
                )
                return inner is not None and self.carries(inner)
            if name.endswith(("headers.get", ".get", ".header")) and args:
                return bool(_SIG_HEADER.search(text(args[0])))
            return False
        if node.type == "object":
            for child in node.named_children:
                value = child.child_by_field_name("value") if child.type == "pair" else child
                if child.type == "shorthand_property_identifier" and text(child) in self.names:
                    return True
                if (
                    value is not None
                    and child.type != "shorthand_property_identifier"
                    and self.carries(value)
                ):
                    return True
            return False
        if node.type == "array":
            return any(self.carries(c) for c in node.named_children)
        if node.type == "template_string":
            return False  # a formatted message: the rule would be about logging, not retention
        return False


def _stores(file: JsFile, containers: dict[str, Node]) -> Iterator[tuple[Node, str, Node]]:
    """(store node, container, value) for each store into a module-level container."""
    for node in walk(file.root):
        if node.type == "call_expression":
            func = node.child_by_field_name("function")
            path = member_path(func) if func is not None else None
            if not path or "." not in path:
                continue
            owner, _, method = path.rpartition(".")
            if owner in containers and method in _ADDERS:
                args = call_args(node)
                if args:
                    yield node, owner, args[-1]
        elif node.type == "assignment_expression":
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            if left is not None and right is not None and left.type == "subscript_expression":
                obj = left.child_by_field_name("object")
                if obj is not None and text(obj) in containers:
                    yield node, text(obj), right


@audit_rule(
    id="js-body-retained-global",
    title="Request body, signature or headers kept in a module-level array or map (JavaScript)",
    language=Language.JAVASCRIPT,
    category=Category.MEMORY_LEAK,
    severity=Severity.HIGH,
    cwe=(401, 770),
    remediation="Keep request data request-scoped; to remember deliveries, store the delivery id or "
    "a hash of the body in a bounded store with a TTL (an LRU cache, Redis with EXPIRE).",
    trigger=all_of(any_of(".push(", ".unshift(", ".set(", ".add(", "] ="), any_of("req", "body", "ignature")),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    file = ctx.file
    containers = _containers(file)
    if not containers:
        return
    reads = {r.node.id for r in body_reads(file)}
    chunks: dict[int, set[str]] = {}
    for handler in data_handlers(file):
        function = enclosing_function(handler.site)
        if function is not None and handler.chunk:
            chunks.setdefault(function.id, set()).add(handler.chunk)
    taints: dict[int, _Taint] = {}
    for node, owner, value in _stores(file, containers):
        function = enclosing_function(node)
        if function is None:
            continue  # module-level code runs once
        outer = function
        names: set[str] = set()
        while outer is not None:  # closures see their parents' names (req.on('end', ...) inside a handler)
            taint = taints.get(outer.id)
            if taint is None:
                taint = taints[outer.id] = _Taint(file, outer, chunks.get(outer.id, set()), reads)
            names |= taint.names
            outer = enclosing_function(outer)
        merged = taints[function.id]
        saved = merged.names
        merged.names = names
        try:
            kept = merged.carries(value)
        finally:
            merged.names = saved
        if not kept:
            continue
        yield finding_at(
            "js-body-retained-global",
            file.source,
            int(node.start_point[0]) + 1,
            f"Request data (`{text(value)[:60]}`) is stored in module-level `{owner}`, which lives as "
            "long as the process: one more entry per request.",
            column=int(node.start_point[1]) + 1,
            values={"container": owner, "value": text(value)[:120]},
        )
