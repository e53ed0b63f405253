"""Where JavaScript code consumes a request body chunk by chunk, and what it does per chunk.

Two shapes: ``req.on('data', handler)`` (``addListener``/``prependListener`` too) and
``for await (const chunk of req) { ... }``. For each, the rules ask whether the chunks are
accumulated (``body += chunk``, ``chunks.push(chunk)``, ``Buffer.concat([body, chunk])``), hashed
(``hmac.update(chunk)``), and whether the code counts bytes against a limit and stops past it.
Streams named ``res``/``response`` are left alone: in Node servers those are outgoing responses,
and in clients ``res.on('data')`` reads a server's answer, not a client's body. A ``for await``
loop counts only over the request (``req``, ``request``, ``ctx.req``, ``request.body``...): the same
loop over ``glob()`` or a readline interface reads files or lines, not a body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from hmacguard.audit.javascript.frontend import (
    FUNCTION_TYPES,
    JsFile,
    Node,
    call_args,
    first_param,
    member_path,
    string_of,
    text,
    walk,
)

__all__ = ["DataHandler", "accumulations", "data_handlers", "hmac_names", "hmac_updates"]

# Outgoing responses, a client's answers, and child processes' pipes: not a request body.
_RESPONSES = frozenset({"res", "response", "resp", "upstream", "proxyRes", "stdout", "stderr", "stdin"})
_LISTEN = frozenset({"on", "addListener", "prependListener"})
_RELATIONAL = frozenset({">", ">=", "<", "<="})
_STOPS = re.compile(r"destroy|abort|reject|throw|413|\.end\(|emit\(|pause\(|unpipe|close\(|return|break")
_HASHY = re.compile(r"hmac|mac$|hash|signer|digest", re.IGNORECASE)


@dataclass(frozen=True)
class DataHandler:
    """One place chunks of a readable stream are handled."""

    site: Node  # the .on('data', ...) call or the for-await statement
    receiver: str
    #: The function (or loop body) run per chunk; None for ``chunks.push.bind(chunks)``.
    body: Node | None
    #: The chunk's name inside ``body``.
    chunk: str | None
    #: ``X.push.bind(X)`` / ``X.push`` / ``h.update.bind(h)`` passed directly: (X, method).
    bound: tuple[str, str] | None = None

    @property
    def line(self) -> int:
        return int(self.site.start_point[0]) + 1

    @property
    def counted(self) -> bool:
        """Whether the handler compares something against a limit and can stop the stream."""
        if self.body is None:
            return False
        relational = any(
            n.type == "binary_expression"
            and (op := n.child_by_field_name("operator")) is not None
            and text(op) in _RELATIONAL
            for n in walk(self.body)
        )
        return relational and _STOPS.search(text(self.body)) is not None


def _bound_method(node: Node) -> tuple[str, str] | None:
    """``chunks.push.bind(chunks)`` or ``chunks.push`` -> ("chunks", "push")."""
    if node.type == "call_expression":
        func = node.child_by_field_name("function")
        if func is not None and func.type == "member_expression":
            bound = member_path(func) or ""
            if bound.endswith(".bind"):
                node = func.child_by_field_name("object")
    path = member_path(node) if node is not None else None
    if path and "." in path:
        owner, _, method = path.rpartition(".")
        return owner, method
    return None


def data_handlers(file: JsFile) -> Iterator[DataHandler]:
    for node in walk(file.root):
        if node.type == "call_expression":
            func = node.child_by_field_name("function")
            if func is None or func.type != "member_expression":
                continue
            prop = func.child_by_field_name("property")
            obj = func.child_by_field_name("object")
            if prop is None or obj is None or text(prop) not in _LISTEN:
                continue
            args = call_args(node)
            if len(args) < 2 or string_of(args[0]) != "data":
                continue
            receiver = member_path(obj) or text(obj)
            if receiver.rsplit(".", 1)[-1] in _RESPONSES:
                continue
            handler = args[1]
            if handler.type in FUNCTION_TYPES:
                body = handler.child_by_field_name("body")
                yield DataHandler(node, receiver, body, first_param(handler))
            else:
                yield DataHandler(node, receiver, None, None, _bound_method(handler))
        elif node.type == "for_in_statement" and any(c.type == "await" for c in node.children):
            right = node.child_by_field_name("right")
            left = node.child_by_field_name("left")
            if right is None or left is None:
                continue
            path = member_path(right)
            if path is None or not _request_stream(path):
                continue
            yield DataHandler(node, path, node.child_by_field_name("body"), _loop_name(left))


_REQUEST_STREAMS = frozenset(
    {"req", "request", "incoming", "incomingMessage", "rawRequest", "stream", "readable"}
)


def _request_stream(path: str | None) -> bool:
    """``req``, ``ctx.req``, ``request.body``, ``c.req.raw.body``: what a request body is read from."""
    if not path:
        return False
    parts = [p for p in path.split(".") if p not in ("raw", "body")]
    return bool(parts) and parts[-1] in _REQUEST_STREAMS


def _loop_name(left: Node) -> str:
    """``const chunk`` -> ``chunk``."""
    names = [n for n in walk(left) if n.type == "identifier"]
    return text(names[-1]) if names else text(left)


def _mentions(node: Node, name: str) -> bool:
    return any(n.type == "identifier" and text(n) == name for n in walk(node))


def accumulations(handler: DataHandler) -> Iterator[tuple[Node, str]]:
    """(node, what) for each place the handler keeps the chunk beyond its iteration."""
    if handler.bound is not None:
        owner, method = handler.bound
        if method in ("push", "concat", "unshift"):
            yield handler.site, f"{owner}.{method}"
        return
    if handler.body is None or handler.chunk is None:
        return
    chunk = handler.chunk
    for node in walk(handler.body):
        if node.type == "augmented_assignment_expression":
            op = node.child_by_field_name("operator")
            right = node.child_by_field_name("right")
            left = node.child_by_field_name("left")
            if op is not None and text(op) == "+=" and right is not None and _mentions(right, chunk):
                yield node, f"{text(left) if left is not None else 'body'} += {chunk}"
        elif node.type == "assignment_expression":
            right = node.child_by_field_name("right")
            left = node.child_by_field_name("left")
            if left is None or right is None:
                continue
            target = text(left)
            if _mentions(right, chunk) and _mentions(right, target.split(".")[-1]):
                yield node, f"{target} = ... {chunk}"
        elif node.type == "call_expression":
            func = node.child_by_field_name("function")
            path = member_path(func) if func is not None else None
            if (
                path
                and path.endswith((".push", ".unshift"))
                and any(_mentions(a, chunk) for a in call_args(node))
            ):
                yield node, f"{path}({chunk})"


def creates_hmac(node: Node) -> bool:
    """``crypto.createHmac(...)`` or a chain on it (``createHmac(a, k).update(b)``), not ``.digest()``.

    Only the call chain itself counts: a minified function expression that mentions createHmac
    somewhere inside does not make the variable it is assigned to an HMAC.
    """
    while node.type == "call_expression":
        func = node.child_by_field_name("function")
        if func is None:
            return False
        if func.type == "identifier":
            return text(func) == "createHmac"
        if func.type != "member_expression":
            return False
        prop = func.child_by_field_name("property")
        if prop is not None and text(prop) == "createHmac":
            return True
        if prop is not None and text(prop) in ("digest", "toString"):
            return False
        obj = func.child_by_field_name("object")
        if obj is None:
            return False
        node = obj
    return False


def hmac_names(file: JsFile) -> set[str]:
    """Identifiers assigned from ``createHmac(...)`` anywhere in the file."""
    names: set[str] = set()
    for node in walk(file.root):
        if node.type in ("variable_declarator", "assignment_expression"):
            left = node.child_by_field_name("name") or node.child_by_field_name("left")
            right = node.child_by_field_name("value") or node.child_by_field_name("right")
            if left is not None and right is not None and creates_hmac(right):
                names.add(text(left))
    return names


def hmac_updates(handler: DataHandler, hmacs: set[str]) -> Iterator[Node]:
    """Calls that feed the chunk into an HMAC: ``hmac.update(chunk)``, ``h.update.bind(h)``."""
    if handler.bound is not None:
        owner, method = handler.bound
        if method == "update" and (owner in hmacs or _HASHY.search(owner)):
            yield handler.site
        return
    if handler.body is None or handler.chunk is None:
        return
    for node in walk(handler.body):
        if node.type != "call_expression":
            continue
        func = node.child_by_field_name("function")
        path = member_path(func) if func is not None else None
        if not path or not path.endswith(".update"):
            continue
        owner = path.rsplit(".", 1)[0]
        if (owner in hmacs or _HASHY.search(owner)) and any(
            _mentions(a, handler.chunk) for a in call_args(node)
        ):
            yield node
