"""Where JavaScript reads a whole request body in one call, and whether something bounds it.

Besides chunk accumulation (:mod:`.streams`), a Node or Fetch-API server buffers a body whole by:

- ``raw-body``: ``getRawBody(req)`` — with no ``limit`` option it reads to the end (unlike
  body-parser, which passes its 100 kb default to it);
- piping the request into a buffering collector: ``concat-stream``, ``bl``, or
  ``stream/consumers``' ``text()``/``buffer()``/``json()``/``arrayBuffer()``/``blob()``;
- the Fetch API: ``await request.text()`` / ``arrayBuffer()`` / ``json()`` / ``formData()`` /
  ``blob()`` (Next.js route handlers, Remix actions, Cloudflare/Deno/Bun workers), and Hono's
  ``c.req.json()`` / ``text()`` / ``arrayBuffer()`` / ``parseBody()`` / ``formData()`` / ``blob()``.

What bounds such a read: a ``limit`` (raw-body), Hono's ``bodyLimit()`` middleware anywhere in the
project file, a strict Content-Length check before the read in the same function (one that also
refuses a missing header), or SvelteKit's adapter-node default (``BODY_SIZE_LIMIT``, 512 KB) for
``+server`` routes. Piping the request *into an HMAC* (``req.pipe(hmac)``) streams: it is not a read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

from hmacguard.audit.javascript.frontend import (
    FUNCTION_TYPES,
    JsFile,
    Node,
    call_args,
    enclosing_function,
    member_path,
    object_pairs,
    string_of,
    text,
    walk,
)

__all__ = ["SIGNATURE_WORDS", "BodyRead", "body_reads", "length_guards", "request_like"]

_FETCH_READS = frozenset({"text", "arrayBuffer", "json", "formData", "blob"})
_HONO_READS = frozenset({"text", "arrayBuffer", "json", "formData", "blob", "parseBody"})
_CONSUMERS = frozenset({"text", "buffer", "json", "arrayBuffer", "blob"})
_REQUEST_NAMES = frozenset({"req", "request", "incoming", "incomingMessage", "rawRequest", "r"})
_RESPONSE_NAMES = frozenset({"res", "response", "resp", "upstream", "proxyRes", "result", "reply"})
#: Text that says a file verifies (or computes) a signature.
SIGNATURE_WORDS = re.compile(
    r"createHmac|subtle\.(sign|verify)|[Ss]ignature|hmac|HMAC|verifyWebhook|constructEvent|timingSafeEqual"
)


@dataclass(frozen=True)
class BodyRead:
    """One whole-body read."""

    node: Node
    #: As written, e.g. ``await request.text()``, ``getRawBody(req)``.
    what: str
    #: raw-body, collector, fetch, hono.
    kind: str

    @property
    def line(self) -> int:
        return int(self.node.start_point[0]) + 1

    @property
    def column(self) -> int:
        return int(self.node.start_point[1]) + 1


def request_like(path: str | None) -> bool:
    """``req``, ``request``, ``ctx.req``, ``event.request``, ``context.request``, ``c.req.raw``."""
    if not path:
        return False
    parts = path.split(".")
    if parts[-1] == "raw" and len(parts) > 1:
        parts = parts[:-1]
    return parts[-1] in _REQUEST_NAMES


def _imports(file: JsFile, module_pattern: str) -> set[str]:
    """Local names bound to ``module_pattern`` by require() or import (default or named)."""
    pattern = re.compile(module_pattern)
    names: set[str] = set()
    for node in walk(file.root):
        if node.type == "import_statement":
            source = node.child_by_field_name("source")
            if source is None or not pattern.fullmatch(string_of(source) or ""):
                continue
            for child in walk(node):
                if child.type == "identifier":
                    names.add(text(child))
        elif node.type == "variable_declarator":
            value = node.child_by_field_name("value")
            name = node.child_by_field_name("name")
            if value is None or name is None or value.type != "call_expression":
                continue
            func = value.child_by_field_name("function")
            args = call_args(value)
            if func is None or text(func) != "require" or not args:
                continue
            if not pattern.fullmatch(string_of(args[0]) or ""):
                continue
            if name.type == "identifier":
                names.add(text(name))
            else:  # const { text, buffer } = require('stream/consumers')
                for child in walk(name):
                    if child.type in ("shorthand_property_identifier_pattern", "identifier"):
                        names.add(text(child))
    return names


def _raw_body_unlimited(call: Node) -> bool:
    args = call_args(call)
    if len(args) < 2:
        return True
    options = object_pairs(args[1])
    if args[1].type == "object":
        return "limit" not in options
    # getRawBody(req, 'utf8') or a variable holding options: only a literal string is known
    return bool(args[1].type == "string")


def _svelte_route(path: str) -> bool:
    return PurePath(path).name.startswith("+server.")


def body_reads(file: JsFile) -> Iterator[BodyRead]:
    """Every whole-body read in ``file`` that nothing in the call itself bounds."""
    raw_body = _imports(file, r"raw-body")
    collectors = _imports(file, r"concat-stream|bl")
    consumers = _imports(file, r"(node:)?stream/consumers")
    svelte = _svelte_route(file.path)
    for node in walk(file.root):
        if node.type != "call_expression":
            continue
        func = node.child_by_field_name("function")
        if func is None:
            continue
        args = call_args(node)
        if func.type == "identifier":
            name = text(func)
            if name in raw_body and args and _raw_body_unlimited(node):
                yield BodyRead(node, f"{name}({text(args[0])[:40]})", "raw-body")
            elif name in consumers and name in _CONSUMERS and args and request_like(member_path(args[0])):
                yield BodyRead(node, f"{name}({text(args[0])[:40]})", "collector")
            continue
        if func.type != "member_expression":
            continue
        prop = func.child_by_field_name("property")
        obj = func.child_by_field_name("object")
        if prop is None or obj is None:
            continue
        method = text(prop)
        receiver = member_path(obj)
        if method == "pipe" and request_like(receiver) and args:
            target = args[0]
            callee = target.child_by_field_name("function") if target.type == "call_expression" else None
            if callee is not None and text(callee) in collectors:
                yield BodyRead(node, f"{receiver}.pipe({text(callee)}(...))", "collector")
            continue
        if args or receiver is None:
            continue
        if (
            method in _HONO_READS
            and receiver.endswith(".req")
            and receiver.split(".")[0] in ("c", "ctx", "context")
        ):
            yield BodyRead(node, f"await {receiver}.{method}()", "hono")
        elif method in _FETCH_READS and request_like(receiver) and not svelte:
            if receiver.split(".")[-1] in _RESPONSE_NAMES:
                continue
            yield BodyRead(node, f"await {receiver}.{method}()", "fetch")


def hono_limited(file: JsFile) -> bool:
    """Whether the file installs Hono's ``bodyLimit()`` middleware (a call, not a mention)."""
    if "bodyLimit(" not in file.source.text:
        return False
    for node in walk(file.root):
        if node.type == "call_expression":
            func = node.child_by_field_name("function")
            if func is not None and text(func).rsplit(".", 1)[-1] == "bodyLimit":
                return True
    return False


_LENGTH_TEXT = re.compile(r"content-length|contentLength|content_length", re.IGNORECASE)
_RELATIONAL = frozenset({">", ">="})
_EXITS = re.compile(r"\breturn\b|\bthrow\b|413|\.status\(|\.end\(|destroy\(|reject\(|abort\(")


@dataclass(frozen=True)
class LengthGuard:
    node: Node
    #: True when a request without Content-Length (chunked) passes the check.
    bypassable: bool


def _length_names(function: Node) -> set[str]:
    names: set[str] = set()
    for node in walk(function):
        if node.type == "variable_declarator":
            name = node.child_by_field_name("name")
            value = node.child_by_field_name("value")
            if name is not None and value is not None and _LENGTH_TEXT.search(text(value)):
                names.add(text(name))
    return names


def _mentions_length(node: Node, names: set[str]) -> bool:
    if _LENGTH_TEXT.search(text(node)):
        return True
    return any(n.type == "identifier" and text(n) in names for n in walk(node))


def _refuses_absent(test: Node, names: set[str]) -> bool:
    """``!contentLength``, ``cl === undefined``, ``Number.isNaN(len)``, ``!req.headers['content-length']``."""
    for node in walk(test):
        if node.type == "unary_expression" and text(node).startswith("!") and not text(node).startswith("!="):
            operand = node.named_children[0] if node.named_children else None
            if operand is not None and _mentions_length(operand, names):
                return True
        if node.type == "binary_expression":
            op = node.child_by_field_name("operator")
            sides = [node.child_by_field_name("left"), node.child_by_field_name("right")]
            if (
                op is not None
                and text(op) in ("===", "==")
                and any(s is not None and text(s) in ("undefined", "null") for s in sides)
            ):
                return any(s is not None and _mentions_length(s, names) for s in sides)
        if node.type == "call_expression" and text(node).startswith(("Number.isNaN", "isNaN")):
            return _mentions_length(node, names)
    return False


def _compares_above(test: Node, names: set[str]) -> bool:
    for node in walk(test):
        if node.type != "binary_expression":
            continue
        op = node.child_by_field_name("operator")
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if op is None or left is None or right is None:
            continue
        if text(op) in _RELATIONAL and _mentions_length(left, names):
            return True
        if text(op) in ("<", "<=") and _mentions_length(right, names):
            return True
    return False


def length_guards(function: Node) -> Iterator[LengthGuard]:
    """Every ``if`` in ``function`` (not nested functions) that compares a Content-Length above a
    limit and leaves; bypassable unless some check in the function refuses a missing header."""
    names = _length_names(function)
    ifs = [n for n in _own(function) if n.type == "if_statement"]
    strict = False
    guards: list[Node] = []
    for node in ifs:
        test = node.child_by_field_name("condition")
        body = node.child_by_field_name("consequence")
        if test is None or body is None or not _EXITS.search(text(body)):
            continue
        if _refuses_absent(test, names):
            strict = True
        if _compares_above(test, names):
            guards.append(node)
    for node in guards:
        yield LengthGuard(node, bypassable=not strict)


def _own(function: Node) -> Iterator[Node]:
    """Nodes of ``function``'s body, not descending into nested functions."""
    body = function.child_by_field_name("body") or function
    stack = list(reversed(body.children))
    while stack:
        node = stack.pop()
        yield node
        if node.type in FUNCTION_TYPES:
            continue
        stack.extend(reversed(node.children))


def strictly_guarded(read: Node) -> bool:
    """Whether a strict Content-Length check in the read's function precedes it."""
    function = enclosing_function(read)
    if function is None:
        return False
    return any(not g.bypassable and g.node.start_byte < read.start_byte for g in length_guards(function))
