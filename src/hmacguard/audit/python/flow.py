"""Data flow inside one Python function: which values carry the request body, a signature, a
digest, or possibly None, and where they go.

The analysis is deliberately simple and predictable (the rules' documentation can describe it in a
sentence): it is flow-insensitive inside a function (a name carries the union of everything ever
assigned to it), follows assignments, augmented assignments, unpacking, ``for`` targets, ``with``
targets, container mutation (``chunks.append(chunk)``), string building, the usual byte/str
transformations and closures (a nested function starts from its parent's names). Calls to
functions defined in the audited project are followed through per-function summaries (which
parameters reach an HMAC sink, what the function returns); other calls are opaque, except
constructors, which carry their arguments (``Entry(body)`` still holds the body).

Taint kinds:

- ``body``: the whole request body in memory (or a value built from it).
- ``chunk``: one piece of the body read from a stream; accumulating chunks yields ``body``.
- ``sig``: a signature taken from a request header.
- ``headers``: the request's header mapping.
- ``digest``: the output of an HMAC (``hexdigest()``, ``hmac.digest``).
- ``maybe_none``: a ``.get(name)`` on headers/META/environ without a default.
- ``hmac_obj`` / ``hash_obj``: an HMAC or hashlib object (``.update`` on it is a sink).
- ``param``: a parameter of the function (used to build summaries).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from hmacguard.audit.python.frontend import (
    FunctionScope,
    PyFile,
    dotted,
    is_request_like,
    is_signature_key,
    keyword,
    last_name,
    string_value,
)
from hmacguard.audit.python.guards import enclosing_loop, loop_is_counted
from hmacguard.audit.python.taint import (
    BODY,
    CARRIED,
    CHUNK,
    CONTAINER_ADD,
    DIGEST,
    EMPTY,
    HASH_ALGOS,
    HASH_OBJ,
    HASHY_NAME,
    HEADERS,
    HEADERS_ATTRS,
    HMAC_OBJ,
    MAYBE_NONE,
    PARAM,
    SIG,
    STREAM,
    TRANSFORMS,
    WRAPPERS,
    SinkHit,
    Summary,
    Taint,
    Taints,
    body_source,
    looks_like_verifier,
    stream_source,
)

if TYPE_CHECKING:
    from hmacguard.audit.python.facts import PythonFacts

__all__ = ["Flow", "analyze", "is_request_like_prefix"]


class Flow:
    """The taint environment of one scope, computed on construction."""

    def __init__(
        self,
        file: PyFile,
        scope: FunctionScope,
        facts: PythonFacts | None,
        outer: dict[str, Taints] | None = None,
        seed_params: bool = False,
    ) -> None:
        self.file = file
        self.scope = scope
        self.facts = facts
        self.env: dict[str, Taints] = dict(outer or {})
        self.nodes = file.own_nodes(scope)
        if seed_params:
            offset = 1 if scope.is_method else 0
            for i, name in enumerate(scope.params):
                if i >= offset:
                    self.env[name] = frozenset({Taint(PARAM, scope.line, str(i - offset))})
        else:
            for name in scope.params:
                self.env.pop(name, None)
        self._run()

    # -- environment ------------------------------------------------------------------------

    def _bind(self, target: ast.AST, taints: Taints) -> bool:
        if not taints:
            return False
        if isinstance(target, ast.Tuple | ast.List):
            return any([self._bind(t, taints) for t in target.elts])
        if isinstance(target, ast.Starred):
            return self._bind(target.value, taints)
        if isinstance(target, ast.Subscript):
            return self._bind(target.value, taints | self.taint(target.slice))
        key = dotted(target)
        if key is None:
            return False
        old = self.env.get(key, EMPTY)
        new = old | taints
        if new != old:
            self.env[key] = new
            return True
        return False

    def _accumulated(self, taints: Taints, at: ast.AST | None = None) -> Taints:
        """Chunks appended or concatenated together are the whole body."""
        if not any(t.kind == CHUNK for t in taints):
            return taints
        out = set(taints)
        line = getattr(at, "lineno", 0)
        loop = enclosing_loop(at, self.file.parents) if at is not None else None
        note = "counted" if loop is not None and loop_is_counted(loop) else ""
        # Joining a list that was filled in a loop: the list already says whether that loop
        # counted (b"".join(chunks) after a counted append loop is as bounded as the loop).
        filled = {t.api for t in taints if t.kind == BODY and t.api.startswith("chunks of ")}
        for t in taints:
            if t.kind == CHUNK and at is None and f"chunks of {t.api} accumulated" in filled:
                continue
            if t.kind == CHUNK:
                out.add(
                    Taint(
                        BODY,
                        line or t.line,
                        f"chunks of {t.api} accumulated",
                        t.framework,
                        getattr(at, "col_offset", t.column),
                        note,
                    )
                )
        return frozenset(out)

    def _run(self) -> None:
        statements = [
            n
            for n in self.nodes
            if isinstance(
                n,
                ast.Assign
                | ast.AnnAssign
                | ast.AugAssign
                | ast.For
                | ast.AsyncFor
                | ast.withitem
                | ast.NamedExpr
                | ast.Call
                | ast.comprehension
                | ast.FunctionDef
                | ast.AsyncFunctionDef,
            )
        ]
        for _ in range(4):  # enough for chains like a = x; b = a; c = b
            changed = False
            for n in statements:
                changed |= self._step(n)
            if not changed:
                break

    def _step(self, n: ast.AST) -> bool:
        if isinstance(n, ast.Assign):
            t = self.taint(n.value)
            return any([self._bind(target, t) for target in n.targets])
        if isinstance(n, ast.AnnAssign) and n.value is not None:
            return self._bind(n.target, self.taint(n.value))
        if isinstance(n, ast.AugAssign):
            t = self.taint(n.value)
            if isinstance(n.op, ast.Add):
                t = self._accumulated(t, n)
            return self._bind(n.target, t)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            # A nested function keeps alive what it refers to (a closure).
            names = [x for x in ast.walk(n) if isinstance(x, ast.Name)]
            return self._bind(ast.Name(id=n.name), self._carried(self.taints_of(names)))
        if isinstance(n, ast.For | ast.AsyncFor | ast.comprehension):
            return self._bind(n.target, self.iter_taint(n.iter))
        if isinstance(n, ast.withitem) and n.optional_vars is not None:
            return self._bind(n.optional_vars, self.taint(n.context_expr))
        if isinstance(n, ast.NamedExpr):
            return self._bind(n.target, self.taint(n.value))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            attr = n.func.attr
            if attr in CONTAINER_ADD and n.args:
                return self._bind(n.func.value, self._accumulated(self.taint(n.args[-1]), n))
            if (
                attr in ("update", "setdefault", "put")
                and n.args
                and not self._is_hash_receiver(n.func.value)
            ):
                return self._bind(n.func.value, self.taints_of(n.args))
            if attr == "write" and n.args and not self._is_hash_receiver(n.func.value):
                return self._bind(n.func.value, self._accumulated(self.taint(n.args[0]), n))
        return False

    # -- evaluation -------------------------------------------------------------------------

    def taints_of(self, nodes: Iterable[ast.AST]) -> Taints:
        out: set[Taint] = set()
        for node in nodes:
            out |= self.taint(node)
        return frozenset(out)

    def iter_taint(self, node: ast.AST) -> Taints:
        source = stream_source(node, self.file)
        if source is not None:
            return frozenset({source})
        out: set[Taint] = set()
        for t in self.taint(node):
            if t.kind == STREAM:
                lines = f"{t.framework}-lines"
                out.add(Taint(CHUNK, t.line, f"{t.api} (iterated: yields lines)", lines, t.column))
            elif t.kind in CARRIED:
                out.add(t)
        return frozenset(out)

    def taint(self, node: ast.AST | None) -> Taints:
        if node is None:
            return EMPTY
        source = body_source(node, self.file)
        if source is not None:
            return frozenset({source})
        if isinstance(node, ast.Name):
            return self.env.get(node.id, EMPTY)
        if isinstance(node, ast.Attribute):
            key = dotted(node)
            if key is not None and key in self.env:
                return self.env[key]
            if node.attr in HEADERS_ATTRS and is_request_like(node.value):
                return frozenset({Taint(HEADERS, node.lineno, key or node.attr)})
            if node.attr in ("stream", "input_stream") and is_request_like(node.value):
                return frozenset({Taint(STREAM, node.lineno, key or node.attr, "flask", node.col_offset)})
            return frozenset(t for t in self.taint(node.value) if t.kind in (BODY, HEADERS))
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Await | ast.Starred | ast.FormattedValue):
            return self.taint(node.value)
        if isinstance(node, ast.NamedExpr):
            return self.taint(node.value)
        if isinstance(node, ast.BinOp):
            both = self.taint(node.left) | self.taint(node.right)
            return self._accumulated(both, node) if isinstance(node.op, ast.Add) else both
        if isinstance(node, ast.JoinedStr):
            return self.taints_of(node.values)
        if isinstance(node, ast.BoolOp):
            out = self.taints_of(node.values)
            last = node.values[-1]
            if isinstance(node.op, ast.Or) and not (isinstance(last, ast.Constant) and last.value is None):
                out = frozenset(t for t in out if t.kind != MAYBE_NONE)
            return out
        if isinstance(node, ast.IfExp):
            return self.taint(node.body) | self.taint(node.orelse)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return self._carried(self.taints_of(node.elts))
        if isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
            return self._carried(self.taints_of([*keys, *node.values]))
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            return self._carried(self.taint(node.elt))
        if isinstance(node, ast.DictComp):
            return self._carried(self.taint(node.key) | self.taint(node.value))
        if isinstance(node, ast.Lambda):
            # A closure keeps what it refers to alive for as long as it is kept.
            names = [n for n in ast.walk(node.body) if isinstance(n, ast.Name)]
            return self._carried(self.taints_of(names))
        return EMPTY

    @staticmethod
    def _carried(taints: Taints) -> Taints:
        return frozenset(t for t in taints if t.kind in CARRIED)

    def _subscript(self, node: ast.Subscript) -> Taints:
        key = string_value(node.slice)
        base = node.value
        if key == "wsgi.input":
            return frozenset({Taint(STREAM, node.lineno, "wsgi.input", "wsgi", node.col_offset)})
        if (
            isinstance(base, ast.Attribute)
            and base.attr in HEADERS_ATTRS
            and (is_request_like(base.value) or dotted(base) in ("environ", "self.environ"))
        ):
            if is_signature_key(key):
                return frozenset({Taint(SIG, node.lineno, f"{dotted(base)}[{key!r}]")})
            return EMPTY
        if isinstance(base, ast.Name) and base.id in ("environ", "headers", "meta") and is_signature_key(key):
            return frozenset({Taint(SIG, node.lineno, f"{base.id}[{key!r}]")})
        inner = self.taint(base)
        if key == "body" and any(t.kind == STREAM and t.framework == "asgi" for t in inner):
            return frozenset({Taint(CHUNK, node.lineno, "receive()['body']", "asgi", node.col_offset)})
        # Slicing or indexing the body is still (part of) the body; a digest likewise.
        return frozenset(t for t in inner if t.kind in (BODY, CHUNK, SIG, DIGEST))

    def _is_hash_receiver(self, node: ast.AST) -> bool:
        kinds = {t.kind for t in self.taint(node)}
        if kinds & {HMAC_OBJ, HASH_OBJ}:
            return True
        name = last_name(node)
        return name is not None and HASHY_NAME.search(name) is not None

    def _call(self, node: ast.Call) -> Taints:
        func = node.func
        qualified = self.file.qualified(func) or ""
        name = last_name(func) or ""
        line = node.lineno
        if qualified in ("hmac.new", "hmac.HMAC"):
            return frozenset({Taint(HMAC_OBJ, line, qualified)})
        if qualified == "hmac.digest":
            return frozenset({Taint(DIGEST, line, qualified)})
        if qualified.startswith("hashlib.") and qualified.split(".", 1)[1] in HASH_ALGOS:
            return frozenset({Taint(HASH_OBJ, line, qualified)})
        if isinstance(func, ast.Attribute):
            receiver = self.taint(func.value)
            kinds = {t.kind for t in receiver}
            if name in ("read", "readlines", "read1", "readline") and STREAM in kinds:
                return self._stream_read(node, name, receiver)
            if name in ("hexdigest", "digest") and HMAC_OBJ in kinds:
                return frozenset({Taint(DIGEST, line, f"{dotted(func) or name}()")})
            if name == "copy" and kinds & {HMAC_OBJ, HASH_OBJ}:
                return frozenset(t for t in receiver if t.kind in (HMAC_OBJ, HASH_OBJ))
            if name == "get" and node.args:
                got = self._header_get(node, func)
                if got is not None:
                    return got
                if string_value(node.args[0]) == "body" and any(
                    t.kind == STREAM and t.framework == "asgi" for t in receiver
                ):
                    return frozenset({Taint(CHUNK, line, "receive()['body']", "asgi", node.col_offset)})
            if name in TRANSFORMS:
                return frozenset(t for t in receiver if t.kind in CARRIED)
            if name == "join" and node.args:
                return self._accumulated(self.iter_taint(node.args[0]))
        if name == "receive" and not node.args and not isinstance(func, ast.Attribute):
            # An ASGI app's receive(): each message carries one piece of the body.
            return frozenset({Taint(STREAM, line, "receive()", "asgi", node.col_offset)})
        if name in WRAPPERS and node.args:
            return self._carried(self.taint(node.args[0]))
        if self.facts is not None and name:
            summary = self.facts.summary(name)
            if summary is not None:
                out: set[Taint] = set()
                if DIGEST in summary.returns:
                    out.add(Taint(DIGEST, line, f"{name}()"))
                out |= summary.returned_sources
                if out:
                    return frozenset(out)
        if name[:1].isupper():
            # A constructor keeps its arguments (Entry(body) holds the body).
            return self._carried(self.taints_of([*node.args, *(k.value for k in node.keywords)]))
        return EMPTY

    def _stream_read(self, node: ast.Call, name: str, receiver: Taints) -> Taints:
        """``stream.read()`` is the whole body; ``stream.read(n)`` and ``readline()`` a chunk."""
        stream = next(t for t in receiver if t.kind == STREAM)
        whole = name in ("read", "readlines") and (
            not node.args or (isinstance(node.args[0], ast.Constant) and node.args[0].value in (None, -1))
        )
        api = f"{stream.api}.{name}()"
        if whole:
            return frozenset({Taint(BODY, node.lineno, api, stream.framework, node.col_offset)})
        framework = f"{stream.framework}-lines" if name == "readline" else stream.framework
        return frozenset({Taint(CHUNK, node.lineno, api, framework, node.col_offset)})

    def _header_get(self, node: ast.Call, func: ast.Attribute) -> Taints | None:
        recv = func.value
        recv_name = dotted(recv) or ""
        tail = recv_name.rsplit(".", 1)[-1]
        header_like = (tail in HEADERS_ATTRS and (is_request_like_prefix(recv_name))) or tail in (
            "environ",
            "headers",
            "meta",
        )
        if not header_like:
            return None
        key = string_value(node.args[0])
        out: set[Taint] = set()
        has_default = len(node.args) > 1 or keyword(node, "default") is not None
        if not has_default or (isinstance(node.args[-1], ast.Constant) and node.args[-1].value is None):
            out.add(Taint(MAYBE_NONE, node.lineno, f"{recv_name}.get({key!r})"))
        if is_signature_key(key):
            out.add(Taint(SIG, node.lineno, f"{recv_name}.get({key!r})"))
        return frozenset(out)

    # -- queries used by rules and summaries ------------------------------------------------

    def calls(self) -> Iterator[ast.Call]:
        for n in self.nodes:
            if isinstance(n, ast.Call):
                yield n

    def sink_hits(self) -> Iterator[SinkHit]:
        """Every value that reaches an HMAC, a hash, or a signature verifier in this scope."""
        for call in self.calls():
            for arg, what in self._sink_args(call):
                taints = self.taint(arg)
                if taints:
                    yield SinkHit(call, arg, taints, what)

    def _sink_args(self, call: ast.Call) -> Iterator[tuple[ast.expr, str]]:
        func = call.func
        qualified = self.file.qualified(func) or ""
        name = last_name(func) or ""
        if qualified in ("hmac.new", "hmac.HMAC", "hmac.digest"):
            msg = keyword(call, "msg") or (call.args[1] if len(call.args) > 1 else None)
            if msg is not None:
                yield msg, qualified
            return
        if qualified.startswith("hashlib.") and qualified.split(".", 1)[1] in HASH_ALGOS:
            index = 1 if qualified == "hashlib.new" else 0
            data = keyword(call, "data") or keyword(call, "string")
            if data is None and len(call.args) > index:
                data = call.args[index]
            if data is not None:
                yield data, qualified
            return
        if isinstance(func, ast.Attribute) and name == "update" and call.args:
            if self._is_hash_receiver(func.value):
                yield call.args[0], f"{dotted(func) or 'update'}()"
            return
        summary = self.facts.summary(name) if self.facts is not None and name else None
        if summary is not None:
            for i in sorted(summary.params_to_sink):
                if i < len(call.args):
                    yield call.args[i], f"{name}() (hashes its argument)"
            return
        if looks_like_verifier(call):
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                yield arg, f"{dotted(func) or name}()"

    def summarize(self) -> Summary:
        summary = Summary()
        for hit in self.sink_hits():
            for t in hit.taints:
                if t.kind == PARAM:
                    summary.params_to_sink.add(int(t.api))
        for n in self.nodes:
            if isinstance(n, ast.Return) and n.value is not None:
                for t in self.taint(n.value):
                    summary.returns.add(t.kind)
                    if t.kind in (BODY, SIG):
                        summary.returned_sources.add(t)
        return summary


def is_request_like_prefix(name: str) -> bool:
    head = name.rsplit(".", 1)[0] if "." in name else ""
    return head.rsplit(".", 1)[-1] in ("request", "req", "http_request", "self")


def analyze(file: PyFile, facts: PythonFacts | None) -> dict[int, Flow]:
    """A :class:`Flow` for every scope of ``file`` (closures see their parent's names)."""
    flows: dict[int, Flow] = {}
    for scope in file.scopes:
        outer = flows[id(scope.parent.node)].env if scope.parent is not None else None
        flows[id(scope.node)] = Flow(file, scope, facts, outer)
    return flows
