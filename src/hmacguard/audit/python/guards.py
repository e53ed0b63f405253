"""Size checks in Python source: Content-Length guards and byte counters in read loops.

Two questions the body rules share:

- *Does a Content-Length check hold?* ``if request.content_length and request.content_length >
  LIMIT`` is skipped when the header is absent (a chunked body): it is **bypassable**.
  ``if request.content_length is None or request.content_length > LIMIT`` refuses the absent
  header: it is **strict**, and a body read after it is bounded by the length the server frames.
- *Does a read loop count bytes?* A loop that adds ``len(chunk)`` to a total and leaves the loop
  (``raise``, ``return``, ``break``, ``abort(413)``) past a limit is **counted**.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hmacguard.audit.python.frontend import call_name, dotted, is_request_like, string_value

__all__ = ["LengthGuard", "find_length_guards", "has_strict_length_guard", "loop_is_counted"]

_LENGTH_KEYS = frozenset({"content-length", "content_length", "http_content_length"})
_EXIT_CALLS = frozenset({"abort", "HTTPException", "close", "destroy", "RequestEntityTooLarge"})


@dataclass(frozen=True)
class LengthGuard:
    node: ast.If
    bypassable: bool
    strict: bool


def _is_length_read(node: ast.AST, names: set[str]) -> bool:
    """``request.content_length``, ``headers.get("Content-Length")``, ``META["CONTENT_LENGTH"]``."""
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute) and node.attr == "content_length":
        return is_request_like(node.value)
    if isinstance(node, ast.Call):
        name = call_name(node)
        if name == "get" and node.args:
            key = string_value(node.args[0])
            return key is not None and key.lower() in _LENGTH_KEYS
        if name in ("int", "float") and node.args:
            return _is_length_read(node.args[0], names)
    if isinstance(node, ast.Subscript):
        key = string_value(node.slice)
        return key is not None and key.lower() in _LENGTH_KEYS
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _is_length_read(node.values[0], names)
    return False


def _defaults_to_zero(node: ast.AST) -> bool:
    """A length read that turns "absent" into 0: ``.get("Content-Length", 0)``, ``x or 0``."""
    if isinstance(node, ast.Call):
        if call_name(node) in ("int", "float") and node.args:
            return _defaults_to_zero(node.args[0])
        if call_name(node) == "get" and len(node.args) > 1:
            default = node.args[1]
            return isinstance(default, ast.Constant) and default.value in (0, "0", "")
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        last = node.values[-1]
        return isinstance(last, ast.Constant) and last.value in (0, "0", "")
    return False


def _length_names(nodes: Iterable[ast.AST]) -> tuple[set[str], set[str]]:
    """Local names holding a Content-Length, and those of them defaulted to zero."""
    names: set[str] = set()
    zeroed: set[str] = set()
    assigns = [n for n in nodes if isinstance(n, ast.Assign) and len(n.targets) == 1]
    for _ in range(2):
        for n in assigns:
            target = n.targets[0]
            if isinstance(target, ast.Name) and _is_length_read(n.value, names):
                names.add(target.id)
                if _defaults_to_zero(n.value):
                    zeroed.add(target.id)
    return names, zeroed


def _compares_length_above(test: ast.AST, names: set[str]) -> ast.AST | None:
    """The length expression of ``length > N`` (or ``N < length``) inside ``test``."""
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            op, right = node.ops[0], node.comparators[0]
            if isinstance(op, ast.Gt | ast.GtE) and _is_length_read(node.left, names):
                return node.left
            if isinstance(op, ast.Lt | ast.LtE) and _is_length_read(right, names):
                return right
    return None


def _presence_checked(test: ast.AST, names: set[str]) -> bool:
    """``length and ...`` / ``length is not None and ...``: the comparison needs the header."""
    if not (isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)):
        return False
    for value in test.values[:-1]:
        if _is_length_read(value, names):
            return True
        if (
            isinstance(value, ast.Compare)
            and isinstance(value.ops[0], ast.IsNot | ast.NotEq)
            and _is_length_read(value.left, names)
        ):
            return True
    return False


def _absence_refused(test: ast.AST, names: set[str]) -> bool:
    """``length is None``, ``not length``, ``"Content-Length" not in headers``."""
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            op = node.ops[0]
            if isinstance(op, ast.Is) and _is_length_read(node.left, names):
                return True
            if isinstance(op, ast.NotIn):
                key = string_value(node.left)
                if key is not None and key.lower() in _LENGTH_KEYS:
                    return True
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.Not)
            and _is_length_read(node.operand, names)
        ):
            return True
    return False


def _exits(body: list[ast.stmt]) -> bool:
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Raise | ast.Return | ast.Break):
                return True
            if isinstance(node, ast.Call) and call_name(node) in _EXIT_CALLS:
                return True
            if isinstance(node, ast.Constant) and node.value == 413:
                return True
    return False


def find_length_guards(nodes: list[ast.AST]) -> Iterator[LengthGuard]:
    """Every ``if`` in ``nodes`` that compares a Content-Length against a limit."""
    names, zeroed = _length_names(nodes)
    refused_absent = any(
        isinstance(n, ast.If) and _absence_refused(n.test, names) and _exits(n.body) for n in nodes
    )
    for n in nodes:
        if not isinstance(n, ast.If) or not _exits(n.body):
            continue
        length = _compares_length_above(n.test, names)
        if length is None:
            continue
        zero = _defaults_to_zero(length) or (isinstance(length, ast.Name) and length.id in zeroed)
        strict = refused_absent or _absence_refused(n.test, names)
        bypassable = not strict and (zero or _presence_checked(n.test, names))
        yield LengthGuard(n, bypassable, strict)


def has_strict_length_guard(nodes: list[ast.AST]) -> bool:
    return any(g.strict for g in find_length_guards(nodes))


def loop_is_counted(loop: ast.AST) -> bool:
    """Whether a read loop compares a byte count against a limit and leaves when it passes it."""
    counters: set[str] = set()
    for node in ast.walk(loop):
        if (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and any(isinstance(c, ast.Call) and call_name(c) == "len" for c in ast.walk(node.value))
        ):
            counters.add(node.target.id)
    for node in ast.walk(loop):
        if isinstance(node, ast.If) and _exits(node.body):
            for part in ast.walk(node.test):
                if isinstance(part, ast.Compare) and not isinstance(part.ops[0], ast.Eq | ast.Is):
                    operands = [part.left, *part.comparators]
                    for op in operands:
                        if isinstance(op, ast.Name) and op.id in counters:
                            return True
                        if isinstance(op, ast.Call) and call_name(op) == "len":
                            return True
                        if isinstance(op, ast.Call) and call_name(op) == "tell":
                            return True
    return False


def enclosing_loop(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    current = parents.get(node)
    while current is not None:
        if isinstance(current, ast.For | ast.AsyncFor | ast.While):
            return current
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return None
        current = parents.get(current)
    return None


def describe(node: ast.AST) -> str:
    return dotted(node) or ast.unparse(node)[:60]
