"""Express/body-parser body limit set to Infinity or above 10 MiB.

**What it finds.** ``express.json``, ``express.raw``, ``express.text``, ``express.urlencoded`` and
the same ``body-parser`` functions (and ``raw-body``/``getRawBody``) called with a ``limit`` of
``Infinity``, ``Number.MAX_SAFE_INTEGER`` or more than 10 MiB (``'50mb'``, ``50 * 1024 * 1024``).
Sizes are read as the ``bytes`` package reads them (``'1mb'`` is 1,048,576 bytes).

**Why it matters.** The parser buffers the whole body up to its limit before the handler runs.
Without a ``limit`` option the default is 100 kb, which is safe; an explicit huge limit is not.

**Not reported.** Parsers without a ``limit`` option, and limits of 10 MiB or less.
"""

from __future__ import annotations

from collections.abc import Iterator

from hmacguard.audit.javascript.context import JsContext
from hmacguard.audit.javascript.frontend import (
    Node,
    bytes_size,
    call_args,
    member_path,
    object_pairs,
    text,
    walk,
)
from hmacguard.audit.model import SIZE_THRESHOLD, finding_at
from hmacguard.audit.registry import Language, all_of, any_of, audit_rule
from hmacguard.findings import Category, Finding, Severity

PARSERS = frozenset({"json", "raw", "text", "urlencoded"})
_MODULES = ("'body-parser'", '"body-parser"', "'express'", '"express"')
_RAW_BODY = frozenset({"getRawBody", "rawBody", "raw"})


def parser_objects(ctx: JsContext) -> set[str]:
    """Identifiers that name express or body-parser in this file."""
    names = {"express", "bodyParser", "bodyparser"}
    for node in walk(ctx.file.root):
        if node.type == "variable_declarator":
            name = node.child_by_field_name("name")
            value = node.child_by_field_name("value")
            if (
                name is not None
                and value is not None
                and name.type == "identifier"
                and any(m in text(value) for m in _MODULES)
                and "require" in text(value)
            ):
                names.add(text(name))
        elif node.type == "import_statement" and any(m in text(node) for m in _MODULES):
            for child in walk(node):
                if child.type == "identifier":
                    names.add(text(child))
    return names


def parser_calls(ctx: JsContext) -> Iterator[tuple[Node, str, dict[str, Node]]]:
    """(call, "express.json", options) for every express/body-parser parser call."""
    objects = parser_objects(ctx)
    for node in walk(ctx.file.root):
        if node.type != "call_expression":
            continue
        func = node.child_by_field_name("function")
        path = member_path(func) if func is not None else None
        if path is None or "." not in path:
            continue
        owner, _, method = path.rpartition(".")
        if owner in objects and method in PARSERS:
            args = call_args(node)
            yield node, path, object_pairs(args[0] if args else None)


@audit_rule(
    id="js-body-parser-limit",
    title="Express/body-parser body limit set to Infinity or above 10 MiB",
    language=Language.JAVASCRIPT,
    category=Category.INPUT_VALIDATION,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Give every body parser a limit the largest legitimate payload needs ('1mb' is "
    "ample for webhooks), or leave the 100 kb default.",
    trigger=all_of(any_of("limit"), any_of("express", "body-parser", "bodyParser", "getRawBody", "rawBody")),
)
def check(ctx: JsContext) -> Iterator[Finding]:
    calls = list(parser_calls(ctx))
    for node in walk(ctx.file.root):
        if node.type != "call_expression":
            continue
        func = node.child_by_field_name("function")
        if func is not None and func.type == "identifier" and text(func) in ("getRawBody", "rawBody"):
            args = call_args(node)
            options = object_pairs(args[1]) if len(args) > 1 else {}
            calls.append((node, text(func), options))
    for call, name, options in calls:
        limit = options.get("limit")
        if limit is None:
            continue
        size = bytes_size(limit)
        if size is None or size <= SIZE_THRESHOLD:
            continue
        shown = text(limit)
        infinite = size == float("inf")
        yield finding_at(
            "js-body-parser-limit",
            ctx.file.source,
            int(call.start_point[0]) + 1,
            f"{name}({{limit: {shown}}}) buffers bodies up to "
            f"{'any size' if infinite else shown} in memory before the handler runs.",
            column=int(call.start_point[1]) + 1,
            severity=Severity.HIGH if infinite else Severity.MEDIUM,
            values={"parser": name, "limit": shown, "bytes": None if infinite else int(size)},
        )
