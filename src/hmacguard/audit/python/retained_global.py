"""Request body, signature or headers kept in long-lived state: a leak per request.

**What it finds.** Inside a function, a value carrying the request body, a chunk of it, a
signature (from a header or computed), or the header mapping stored where it outlives the
request (seed 001):

- a module-level list, dict, set, defaultdict or unbounded deque (``append``, ``extend``,
  ``add``, ``insert``, ``update``, ``setdefault``, item assignment), or a name declared ``global``;
- a class attribute (``ClassName.x``, ``cls.x``, ``type(self).x``, or ``self.x`` when ``x`` is a
  container defined in the class body, shared by every instance);
- an attribute of a Django middleware instance (``self.x = body`` in a class built with
  ``get_response``): the middleware lives as long as the worker;
- a closure (``lambda: body`` or a nested function) put in any of the above.

**Why it matters.** Every request adds an entry that is never released: memory grows with
traffic until the worker is killed, unevenly across workers (seed 001).

**Not reported.** Bounded containers (``deque(maxlen=N)``), values derived through a hash
(``hashlib.sha256(body).hexdigest()`` is 64 bytes), and module-level code, which runs once.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import FunctionScope, dotted
from hmacguard.audit.python.taint import BODY, CHUNK, DIGEST, HEADERS, SIG, Taints
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

_KEPT = {BODY: "the request body", CHUNK: "a chunk of the body", SIG: "the signature",
         DIGEST: "a computed signature", HEADERS: "the request headers"}  # fmt: skip
_MUTATORS = frozenset(
    {"append", "extend", "add", "insert", "appendleft", "extendleft", "update", "setdefault"}
)
_SOURCES = ("request", "req.", "environ", "hmac", "digest")
_STORES = (".append(", ".add(", ".extend(", ".insert(", ".appendleft(", ".update(",
           ".setdefault(", "global ", "] =", "get_response")  # fmt: skip


def _kept(taints: Taints) -> str | None:
    for kind in (BODY, CHUNK, SIG, DIGEST, HEADERS):
        if any(t.kind == kind for t in taints):
            return _KEPT[kind]
    return None


class _Places:
    """Where, seen from one function, a store outlives the request."""

    def __init__(self, ctx: PyContext, scope: FunctionScope) -> None:
        self.ctx = ctx
        self.scope = scope
        nodes = ctx.file.own_nodes(scope)
        self.globals = {n for g in nodes if isinstance(g, ast.Global) for n in g.names}
        self.class_node = scope.class_node if scope.is_method else None
        self.class_containers: set[str] = set()
        self.middleware = False
        if self.class_node is not None:
            for stmt in self.class_node.body:
                if isinstance(stmt, ast.Assign):
                    for t in stmt.targets:
                        if isinstance(t, ast.Name) and ctx.file.is_growing_container(stmt.value):
                            self.class_containers.add(t.id)
                if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                    params = [a.arg for a in stmt.args.args]
                    self.middleware = "get_response" in params

    def container(self, node: ast.AST) -> str | None:
        """Why a mutated container outlives the request, or None."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        file = self.ctx.file
        if not rest:
            if head in self.globals:
                return f"global {head}"
            if head in file.module_containers and head not in self.scope.params:
                return f"module-level {head}"
            return None
        if self.class_node is not None:
            attr = rest.split(".")[0]
            if head in ("self", "cls") and attr in self.class_containers:
                return f"class attribute {self.class_node.name}.{attr}"
            if head == "self" and self.middleware:
                return f"middleware instance attribute self.{attr}"
            if head == self.class_node.name:
                return f"class attribute {name}"
        if head in file.module_containers and rest.split(".")[0] in ("setdefault",):
            return f"module-level {head}"
        return None

    def slot(self, target: ast.AST) -> str | None:
        """Why an assignment target outlives the request, or None."""
        if isinstance(target, ast.Subscript):
            return self.container(target.value)
        if isinstance(target, ast.Name) and target.id in self.globals:
            return f"global {target.id}"
        if isinstance(target, ast.Attribute):
            name = dotted(target) or ""
            head = name.split(".")[0]
            if self.class_node is not None and head in (self.class_node.name, "cls"):
                return f"class attribute {name}"
            if head == "self" and self.middleware:
                return f"middleware instance attribute {name}"
            if isinstance(target.value, ast.Call) and dotted(target.value.func) == "type":
                return f"class attribute type(self).{target.attr}"
        return None


def _may_store(text: str, places: _Places) -> bool:
    """A cheap text test: does the scope mention any long-lived place at all?"""
    if places.globals or places.middleware or places.class_containers:
        return True
    if places.class_node is not None and (places.class_node.name in text or "cls." in text):
        return True
    if "type(self)" in text:
        return True
    return any(f"{name}." in text or f"{name}[" in text for name in places.ctx.file.module_containers)


def _stores(flow: Flow, places: _Places) -> Iterator[tuple[ast.AST, str, str]]:
    for node in flow.nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _MUTATORS and node.args:
                where = places.container(node.func.value)
                what = _kept(flow.taints_of([*node.args, *(k.value for k in node.keywords)]))
                if where and what:
                    yield node, where, what
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = flow.taint(node.value)
            for target in targets:
                where = places.slot(target)
                extra = flow.taint(target.slice) if isinstance(target, ast.Subscript) else frozenset()
                what = _kept(value | extra)
                if where and what:
                    yield node, where, what


@audit_rule(
    id="py-body-retained-global",
    title="Request body, signature or headers kept in long-lived state",
    language=Language.PYTHON,
    category=Category.MEMORY_LEAK,
    severity=Severity.HIGH,
    cwe=(401, 770),
    remediation="Keep request data request-scoped: no module-level lists or dicts, class "
    "attributes or middleware attributes holding bodies or signatures; if you need to remember "
    "deliveries, store a hash of the body or the delivery id with a TTL in a bounded store.",
    trigger=all_of(any_of(*_SOURCES), any_of(*_STORES)),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    file = ctx.file
    for scope in ctx.scopes(*_STORES, functions_only=True):
        text = file.scope_text(scope)
        if not any(w in text for w in _SOURCES):
            continue
        places = _Places(ctx, scope)
        if not _may_store(text, places):
            continue
        for node, where, what in _stores(ctx.flow(scope), places):
            yield finding_at(
                "py-body-retained-global",
                ctx.file.source,
                int(getattr(node, "lineno", 0)),
                f"{what.capitalize()} is stored in {where}, which outlives the request: "
                "one more entry kept per request.",
                column=int(getattr(node, "col_offset", 0)) + 1,
                values={"kept": what, "where": where},
            )
