"""The JavaScript/TypeScript front end: tree-sitter's real grammars and a few tree helpers.

``.js``, ``.mjs``, ``.cjs`` and ``.jsx`` files use tree-sitter-javascript; ``.ts``/``.mts``/``.cts``
use tree-sitter-typescript and ``.tsx`` its TSX grammar (the TypeScript grammar extends the
JavaScript one, so the rules' node types are the same). A tree with syntax errors counts as a file
that does not parse: it is reported and skipped rather than half-analysed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any

from hmacguard.audit.model import SourceFile

__all__ = [
    "FUNCTION_TYPES",
    "JS_EXTENSIONS",
    "JsFile",
    "JsParseError",
    "bytes_size",
    "call_args",
    "enclosing_function",
    "first_param",
    "member_path",
    "object_pairs",
    "parse_javascript",
    "string_of",
    "walk",
    "walk_own",
]

JS_EXTENSIONS = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"})
FUNCTION_TYPES = frozenset(
    {
        "function_declaration", "function_expression", "arrow_function", "method_definition",
        "generator_function_declaration", "generator_function", "function",
    }
)  # fmt: skip
Node = Any  # tree_sitter.Node (untyped library)


class JsParseError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@cache
def _parser(grammar: str) -> Any:
    import tree_sitter

    if grammar == "javascript":
        import tree_sitter_javascript as lang_js

        language = tree_sitter.Language(lang_js.language())
    else:
        import tree_sitter_typescript as lang_ts

        raw = lang_ts.language_tsx() if grammar == "tsx" else lang_ts.language_typescript()
        language = tree_sitter.Language(raw)
    return tree_sitter.Parser(language)


def _grammar(path: str) -> str:
    suffix = PurePath(path).suffix.lower()
    if suffix == ".tsx":
        return "tsx"
    if suffix in (".ts", ".mts", ".cts"):
        return "typescript"
    return "javascript"


@dataclass
class JsFile:
    source: SourceFile
    root: Node

    @property
    def path(self) -> str:
        return self.source.path


def walk(node: Node) -> Iterator[Node]:
    """Every node under (and including) ``node``, depth first, in source order.

    A tree cursor rather than ``node.children``: py-tree-sitter caches a node's children list on
    the node, so walking through ``children`` keeps a Python object alive for every node of the
    tree (hundreds of MB for a minified bundle); the cursor hands out nodes nobody keeps.
    """
    cursor = node.walk()
    while True:
        yield cursor.node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def walk_own(node: Node) -> Iterator[Node]:
    """Like :func:`walk`, but not into functions nested under ``node`` (their own scopes)."""
    cursor = node.walk()
    while True:
        current = cursor.node
        yield current
        nested = current.type in FUNCTION_TYPES and current.id != node.id
        if not nested and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _first_error(node: Node) -> Node | None:
    for n in walk(node):
        if n.type == "ERROR" or n.is_missing:
            return n
    return None


def parse_javascript(source: SourceFile) -> JsFile:
    """Parse ``source``; raise JsParseError at the first syntax error."""
    tree = _parser(_grammar(source.path)).parse(source.text.encode("utf-8"))
    root = tree.root_node
    if root.has_error:
        bad = _first_error(root)
        line = bad.start_point[0] + 1 if bad is not None else None
        raise JsParseError("syntax error (tree-sitter)", line)
    return JsFile(source, root)


def text(node: Node) -> str:
    raw: bytes = node.text or b""
    return raw.decode("utf-8", "replace")


def member_path(node: Node) -> str | None:
    """``req.headers.foo`` for a member-expression chain of identifiers; None otherwise."""
    if node.type in ("identifier", "property_identifier", "this", "shorthand_property_identifier"):
        return text(node)
    if node.type == "member_expression":
        obj = node.child_by_field_name("object")
        prop = node.child_by_field_name("property")
        base = member_path(obj) if obj is not None else None
        if base is None or prop is None:
            return None
        return f"{base}.{text(prop)}"
    if node.type == "parenthesized_expression" and node.named_child_count == 1:
        return member_path(node.named_children[0])
    return None


def call_args(call: Node) -> list[Node]:
    args = call.child_by_field_name("arguments")
    return list(args.named_children) if args is not None else []


def string_of(node: Node | None) -> str | None:
    """The value of a string literal (or a template literal without substitutions)."""
    if node is None:
        return None
    if node.type == "string":
        return "".join(
            text(c) for c in node.named_children if c.type in ("string_fragment", "escape_sequence")
        )
    if node.type == "template_string" and not any(c.type == "template_substitution" for c in node.children):
        return "".join(text(c) for c in node.named_children if c.type == "string_fragment")
    return None


def object_pairs(node: Node | None) -> dict[str, Node]:
    """``{limit: '1mb', type: '*/*'}`` -> key -> value node."""
    out: dict[str, Node] = {}
    if node is None or node.type != "object":
        return out
    for pair in node.named_children:
        if pair.type != "pair":
            continue
        key = pair.child_by_field_name("key")
        value = pair.child_by_field_name("value")
        if key is None or value is None:
            continue
        name = string_of(key) if key.type == "string" else text(key)
        if name is not None:
            out[name] = value
    return out


def enclosing_function(node: Node) -> Node | None:
    current = node.parent
    while current is not None:
        if current.type in FUNCTION_TYPES:
            return current
        current = current.parent
    return None


def first_param(function: Node) -> str | None:
    """The first parameter's name of a function or arrow function."""
    params = function.child_by_field_name("parameters")
    if params is None:
        param = function.child_by_field_name("parameter")
        return text(param) if param is not None and param.type == "identifier" else None
    for child in params.named_children:
        if child.type == "identifier":
            return text(child)
        pattern = child.child_by_field_name("pattern")
        if pattern is not None and pattern.type == "identifier":
            return text(pattern)
        return None
    return None


_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)?\s*$", re.IGNORECASE)
_BYTES_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5}


def bytes_size(value: Node) -> float | None:
    """A body-parser ``limit`` in bytes, read as the ``bytes`` package does (1024-based)."""
    literal = string_of(value)
    if literal is not None:
        m = _BYTES.match(literal)
        if m is None:
            return None
        return float(m.group(1)) * _BYTES_UNITS[(m.group(2) or "b").lower()]
    if value.type == "number":
        try:
            return float(text(value).replace("_", ""))
        except ValueError:
            return None
    if value.type == "identifier" and text(value) == "Infinity":
        return float("inf")
    if member_path(value) in ("Number.POSITIVE_INFINITY", "Number.MAX_SAFE_INTEGER", "Number.MAX_VALUE"):
        return float("inf")
    if value.type == "binary_expression":
        left = value.child_by_field_name("left")
        right = value.child_by_field_name("right")
        op = value.child_by_field_name("operator")
        if left is None or right is None or op is None:
            return None
        a, b = bytes_size(left), bytes_size(right)
        if a is None or b is None:
            return None
        return a * b if text(op) == "*" else a + b if text(op) == "+" else None
    return None
