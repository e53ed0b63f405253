"""Cache keyed or valued by the raw request body.

**What it finds.** A cache write whose key or value carries the raw body:
``cache.set(request.body, result)``, ``cache.set(key, body)``, ``redis.setex(body, 60, "1")``,
``caches["default"].add(...)``, and calls with the body to a function memoized by
``functools.lru_cache``/``functools.cache`` (the memo table keeps every argument it has seen,
128 of them by default, all of them with ``cache``).

**Why it matters.** The cache holds a full copy of each body for its whole TTL (for a
process-local cache, in the worker's memory). Seed 001's remedy: key caches by a hash of the
body, ``hashlib.sha256(body).hexdigest()``, and store small results.

**Not reported.** Keys and values derived through a hash or an HMAC.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hmacguard.audit.model import finding_at
from hmacguard.audit.python.context import PyContext
from hmacguard.audit.python.frontend import dotted, last_name
from hmacguard.audit.python.taint import BODY, CHUNK
from hmacguard.audit.registry import Language, audit_rule
from hmacguard.findings import Category, Finding, Severity

_WRITES = frozenset(
    {"set", "add", "set_many", "get_or_set", "setex", "psetex", "setnx", "hset", "hsetnx",
     "lpush", "rpush", "sadd", "mset", "zadd", "set_multi", "add_multi"}
)  # fmt: skip
_CACHE_WORDS = ("cache", "redis", "memcache", "mc", "store")
_MEMOIZERS = frozenset({"lru_cache", "cache"})
_CACHE_WORDS_TEXT = ("cache", "redis", "memcache", "store", "mc.")
_WRITE_CALLS = tuple(f".{name}(" for name in sorted(_WRITES))
_MEMO_WORDS = ("lru_cache", "functools.cache", "@cache")


def _is_cache(node: ast.AST) -> bool:
    name = (dotted(node) or "").lower()
    if isinstance(node, ast.Subscript):
        name = (dotted(node.value) or "").lower()
    last = name.rsplit(".", 1)[-1]
    return any(w in last for w in _CACHE_WORDS) or (last in ("r", "rds", "client") and "redis" in name)


def _memoized_functions(ctx: PyContext) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ctx.file.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if last_name(target) in _MEMOIZERS:
                    names.add(node.name)
    return names


@audit_rule(
    id="py-body-in-cache",
    title="Cache keyed or valued by the raw request body",
    language=Language.PYTHON,
    category=Category.MEMORY_LEAK,
    severity=Severity.HIGH,
    cwe=(401, 770),
    remediation="Key the cache by a hash of the body (hashlib.sha256(body).hexdigest()) and "
    "store only the small result, with a TTL; never memoize a function on the body.",
    trigger=lambda text: (
        any(w in text for w in _MEMO_WORDS)
        or (any(w in text for w in _CACHE_WORDS_TEXT) and any(c in text for c in _WRITE_CALLS))
    ),
)
def check(ctx: PyContext) -> Iterator[Finding]:
    memoized = _memoized_functions(ctx) if any(w in ctx.file.source.text for w in _MEMO_WORDS) else set()
    for scope in ctx.scopes(*_WRITE_CALLS, *(f"{m}(" for m in memoized)):
        flow = ctx.flow(scope)
        for node in flow.nodes:
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = last_name(func) or ""
            if isinstance(func, ast.Attribute) and name in _WRITES and _is_cache(func.value):
                kind = "cache"
            elif isinstance(func, ast.Name) and name in memoized:
                kind = "memo"
            else:
                continue
            args = [*node.args, *(k.value for k in node.keywords)]
            for position, arg in enumerate(args):
                if not any(t.kind in (BODY, CHUNK) for t in flow.taint(arg)):
                    continue
                role = "key" if position == 0 and kind == "cache" else "value"
                if kind == "memo":
                    message = (
                        f"{name}() is memoized (lru_cache/cache) and called with the raw body: "
                        "its memo table keeps each body it has seen."
                    )
                else:
                    message = (
                        f"{dotted(func) or name}() stores the raw body as the cache {role}: "
                        "a full copy per entry for its whole lifetime."
                    )
                yield finding_at(
                    "py-body-in-cache",
                    ctx.file.source,
                    node.lineno,
                    message,
                    column=node.col_offset + 1,
                    values={"call": dotted(func) or name, "role": role},
                )
                break
