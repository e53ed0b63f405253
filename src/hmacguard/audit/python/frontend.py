"""The Python front end: one parsed file and the small vocabulary every Python rule speaks.

Rules ask questions in terms of the web frameworks (is this expression "the request"? which
framework's request is it?), so the helpers here answer them once: dotted names, import aliases,
the frameworks a module imports, module-level names, and constant evaluation of size expressions
such as ``10 * 1024 * 1024``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hmacguard.audit.model import SourceFile

__all__ = [
    "FRAMEWORK_MODULES",
    "UNKNOWN",
    "FunctionScope",
    "PyFile",
    "Unknown",
    "call_name",
    "const_eval",
    "dotted",
    "is_request_like",
    "is_signature_key",
    "iter_statements",
    "keyword",
    "last_name",
    "parse_python",
    "string_value",
]

#: Top-level import names that tell which framework a module's ``request`` belongs to.
FRAMEWORK_MODULES: Mapping[str, str] = {
    "flask": "flask",
    "werkzeug": "flask",
    "quart": "flask",
    "django": "django",
    "rest_framework": "django",
    "starlette": "starlette",
    "fastapi": "starlette",
    "aiohttp": "aiohttp",
    "twisted": "twisted",
}
#: Names a handler conventionally gives the incoming request.
REQUEST_NAMES = frozenset({"request", "req", "http_request", "incoming_request"})
#: Containers that grow without bound unless told otherwise.
GROWING_FACTORIES = frozenset(
    {"list", "dict", "set", "defaultdict", "OrderedDict", "Counter", "deque", "WeakValueDictionary"}
)


class Unknown:
    """A value the audit cannot compute statically (read from the environment, a call...)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()


def dotted(node: ast.AST) -> str | None:
    """``request.headers.get`` for the matching Attribute chain; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def last_name(node: ast.AST) -> str | None:
    """The last identifier of a Name or Attribute (``verify`` for ``self.hooks.verify``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def call_name(call: ast.Call) -> str | None:
    return last_name(call.func)


def is_request_like(node: ast.AST) -> bool:
    """Whether ``node`` names the incoming request (``request``, ``req``, ``self.request``)."""
    name = dotted(node)
    return name is not None and name.rsplit(".", 1)[-1] in REQUEST_NAMES


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def string_value(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b if abs(b) < 64 else float("inf"),
    ast.LShift: lambda a, b: a << b if 0 <= b < 64 else float("inf"),
}


def const_eval(
    node: ast.AST | None, names: Mapping[str, ast.expr] | None = None, _depth: int = 0
) -> int | float | Unknown | None:
    """Evaluate a size expression: numbers, None, arithmetic, and module-level constants."""
    if node is None or _depth > 8:
        return UNKNOWN
    if isinstance(node, ast.Constant):
        if node.value is None:
            return None
        if isinstance(node.value, bool):
            return UNKNOWN
        if isinstance(node.value, int | float):
            return node.value
        return UNKNOWN
    if isinstance(node, ast.Name) and names is not None and node.id in names:
        return const_eval(names[node.id], names, _depth + 1)
    if isinstance(node, ast.Attribute) and dotted(node) in ("math.inf", "sys.maxsize"):
        return float("inf")
    if isinstance(node, ast.Call) and last_name(node.func) in ("int", "float") and node.args:
        if last_name(node.func) == "float" and string_value(node.args[0]) in ("inf", "infinity"):
            return float("inf")
        return const_eval(node.args[0], names, _depth + 1)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = const_eval(node.operand, names, _depth + 1)
        return -inner if isinstance(inner, int | float) else UNKNOWN
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = const_eval(node.left, names, _depth + 1)
        right = const_eval(node.right, names, _depth + 1)
        if isinstance(left, int | float) and isinstance(right, int | float):
            try:
                value: int | float = _BINOPS[type(node.op)](left, right)
            except (ZeroDivisionError, OverflowError):
                return UNKNOWN
            return value
    return UNKNOWN


@dataclass
class FunctionScope:
    """A function (or the module's top level) and what encloses it."""

    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.Module
    qualname: str
    parent: FunctionScope | None = None
    class_node: ast.ClassDef | None = None
    #: Whether the first parameter is ``self``/``cls`` (a method of a class).
    is_method: bool = False

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)

    @property
    def params(self) -> list[str]:
        if isinstance(self.node, ast.Module):
            return []
        a = self.node.args
        return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]


def _own_nodes(root: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a scope, not descending into nested functions, lambdas or classes."""
    body = root.body if isinstance(root, ast.Lambda) else root
    stack: list[ast.AST] = [body] if isinstance(root, ast.Lambda) else list(ast.iter_child_nodes(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(node))


@dataclass
class PyFile:
    """A parsed Python file and what its rules keep asking about it."""

    source: SourceFile
    tree: ast.Module
    _own: dict[int, list[ast.AST]] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> str:
        return self.source.path

    @cached_property
    def aliases(self) -> dict[str, str]:
        """Local name -> qualified name, from every import statement in the file."""
        out: dict[str, str] = {}
        for node in iter_statements(self.tree.body):
            if isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]
                    out[a.asname or top] = a.name if a.asname else top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
        return out

    @cached_property
    def frameworks(self) -> frozenset[str]:
        found = set()
        for qualified in self.aliases.values():
            top = qualified.split(".")[0]
            if top in FRAMEWORK_MODULES:
                found.add(FRAMEWORK_MODULES[top])
        return frozenset(found)

    def qualified(self, node: ast.AST) -> str | None:
        """``hmac.new`` for ``hmac.new``, ``_hmac.new`` (aliased) or ``new`` (from-imported)."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        base = self.aliases.get(head, head)
        return f"{base}.{rest}" if rest else base

    @cached_property
    def module_names(self) -> dict[str, ast.expr]:
        """Module-level ``NAME = value`` assignments (the last one wins, as at run time)."""
        out: dict[str, ast.expr] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = stmt.value
            elif (
                isinstance(stmt, ast.AnnAssign)
                and stmt.value is not None
                and isinstance(stmt.target, ast.Name)
            ):
                out[stmt.target.id] = stmt.value
        return out

    def is_growing_container(self, value: ast.expr) -> bool:
        """Whether a module-level value is a container that grows without a bound."""
        if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp):
            return True
        if isinstance(value, ast.Call):
            name = last_name(value.func)
            if name == "deque":
                # deque(maxlen=N) forgets old entries: bounded.
                return keyword(value, "maxlen") is None and len(value.args) < 2
            return name in GROWING_FACTORIES
        return False

    @cached_property
    def module_containers(self) -> frozenset[str]:
        return frozenset(n for n, v in self.module_names.items() if self.is_growing_container(v))

    @cached_property
    def scopes(self) -> list[FunctionScope]:
        """The module top level, then every function, method and lambda, outermost first.

        Functions are found by walking statements only (cheap); lambdas, which hide in
        expressions, are looked for only in scopes whose text mentions ``lambda``.
        """
        module = FunctionScope(self.tree, "<module>")
        out = [module]

        def visit(body: list[ast.stmt], parent: FunctionScope, prefix: str, cls: ast.ClassDef | None) -> None:
            for stmt in body:
                if isinstance(stmt, ast.ClassDef):
                    visit(stmt.body, parent, f"{prefix}{stmt.name}.", stmt)
                elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                    decorators = {last_name(d) for d in stmt.decorator_list}
                    scope = FunctionScope(
                        stmt,
                        f"{prefix}{stmt.name}",
                        parent,
                        cls,
                        is_method=cls is not None and "staticmethod" not in decorators,
                    )
                    out.append(scope)
                    visit(stmt.body, scope, f"{prefix}{stmt.name}.", None)
                else:
                    for field_name in _BODY_FIELDS:
                        inner = getattr(stmt, field_name, None)
                        if inner:
                            if field_name == "handlers" or field_name == "cases":
                                for handler in inner:
                                    visit(handler.body, parent, prefix, cls)
                            else:
                                visit(inner, parent, prefix, cls)

        visit(self.tree.body, module, "", None)
        if "lambda" in self.source.text:
            for scope in list(out):
                if "lambda" not in self.scope_text(scope):
                    continue
                for node in self.own_nodes(scope):
                    if isinstance(node, ast.Lambda):
                        out.append(FunctionScope(node, f"{scope.qualname}.<lambda>", scope))
        return out

    @cached_property
    def parents(self) -> dict[ast.AST, ast.AST]:
        """Child -> parent for every node (built on first use: few rules need it)."""
        out: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                out[child] = node
        return out

    def own_nodes(self, scope: FunctionScope) -> list[ast.AST]:
        key = id(scope.node)
        nodes = self._own.get(key)
        if nodes is None:
            nodes = list(_own_nodes(scope.node))
            self._own[key] = nodes
        return nodes

    def scope_at(self, line: int) -> FunctionScope:
        """The innermost function containing ``line`` (the module when none does)."""
        best = self.scopes[0]
        for scope in self.scopes[1:]:
            node = scope.node
            if isinstance(node, ast.Module):
                continue
            end = getattr(node, "end_lineno", None) or node.lineno
            if node.lineno <= line <= end and node.lineno >= getattr(best.node, "lineno", 0):
                best = scope
        return best

    def scope_text(self, scope: FunctionScope) -> str:
        node = scope.node
        if isinstance(node, ast.Module):
            return self.source.text
        end = getattr(node, "end_lineno", None) or node.lineno
        return "\n".join(self.source.lines[node.lineno - 1 : end])


_BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def iter_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (not expressions): imports, defs, assignments."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        yield stmt
        for field_name in _BODY_FIELDS:
            inner = getattr(stmt, field_name, None)
            if not inner:
                continue
            if field_name in ("handlers", "cases"):
                for handler in reversed(inner):
                    stack.extend(reversed(handler.body))
            else:
                stack.extend(reversed(inner))


def parse_python(source: SourceFile) -> PyFile:
    """Parse ``source``, whatever Python version's syntax it uses.

    The running interpreter's parser first (fast); when it refuses the file, the version-
    independent fallback of :mod:`.modern_syntax`. Raises SyntaxError (or ValueError for NUL
    bytes) when neither reads it.
    """
    try:
        return PyFile(source, ast.parse(source.text, filename=source.path))
    except SyntaxError as refused:
        from hmacguard.audit.python.modern_syntax import ModernSyntaxError, downgrade

        try:
            older = downgrade(source.text)
        except ModernSyntaxError as exc:
            raise SyntaxError(str(exc), (source.path, exc.line or refused.lineno, 0, "")) from exc
        try:
            return PyFile(source, ast.parse(older, filename=source.path))
        except SyntaxError:
            raise refused from None


_SIG_WORD = re.compile(r"sig|hmac|digest|mac\b", re.IGNORECASE)


def is_signature_key(text: str | None) -> bool:
    """Whether a header name or variable name denotes a signature (``X-Hub-Signature-256``)."""
    return text is not None and _SIG_WORD.search(text) is not None
