"""Starlette/FastAPI facts scoped to each application object, not to the whole project.

A project often holds several ASGI applications: a main app that mounts sub-applications, routers
included into one app and not another, an internal app with only GET routes. Whether a body read
is bounded depends on *its* application: the limiting middleware installed on that app, on an app
that mounts it, or a wrapper around the handler itself. This module works that out:

- **Apps**: ``name = FastAPI(...)`` / ``Starlette(...)`` (or ``APIRouter()``, a router that
  becomes part of whichever apps include it).
- **Which app a read belongs to**: the handler's decorator (``@app.post``, ``@router.post``;
  routers through ``app.include_router(router)``), or ``Route(path, handler)`` in an app's
  ``routes=[...]``. A read that cannot be placed belongs to every app of its module (or, in a
  module with no app, to every app of the project).
- **Caps**: ``app.add_middleware(X)``, ``Starlette(middleware=[Middleware(X)])``, ``app = X(app)``,
  and a handler wrapped or decorated by ``X``, where ``X`` *limits bodies by what it does*: a
  project class or function that reads ASGI ``receive()`` messages (or ``call_next`` requests) and
  answers 413 / raises past a size, or one of known limiters (hmacguard's guard); a name that only
  *says* "limit" is accepted too, as before. A mounted app inherits its parent's cap.
- A ``request.stream()`` loop that counts bytes and stops is not a whole-body read.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from hmacguard.audit.python.frontend import PyFile, dotted, is_request_like, keyword, last_name
from hmacguard.audit.python.guards import enclosing_loop, loop_is_counted

__all__ = ["StarletteApp", "StarletteApps", "StarletteRead"]

_APP_CLASSES = frozenset({"FastAPI", "Starlette"})
_ROUTER_CLASSES = frozenset({"APIRouter", "Router"})
_READ_CALLS = frozenset({"body", "json", "form", "stream"})
_NAMED_LIMIT = re.compile(r"limit|size|max_?body|body_?max|cap\b|guard|413", re.IGNORECASE)
_DOES_LIMIT = re.compile(r"413|TOO_LARGE|[Tt]oo [Ll]arge|EntityTooLarge|ContentTooLarge")
_KNOWN_LIMITERS = frozenset({"HmacGuardMiddleware", "BodyLimitMiddleware", "ContentSizeLimitMiddleware"})


@dataclass
class StarletteApp:
    path: str
    line: int
    name: str  # the variable it is assigned to ("" when not assigned)
    kind: str  # FastAPI, Starlette, APIRouter
    capped_by: str = ""
    parents: list[str] = field(default_factory=list)  # keys of apps that mount or include it

    @property
    def key(self) -> str:
        return f"{self.path}:{self.name or self.line}"


@dataclass(frozen=True)
class StarletteRead:
    path: str
    line: int
    column: int
    what: str
    #: Keys of the apps/routers the handler is registered on (empty: not placed).
    owners: tuple[str, ...]
    #: A limiter wrapping or decorating this handler, if any.
    wrapped_by: str = ""


class StarletteApps:
    """Every Starlette/FastAPI app, router, read and cap of a project."""

    def __init__(self, files: list[PyFile]) -> None:
        self.apps: dict[str, StarletteApp] = {}
        self.reads: list[StarletteRead] = []
        self._limiters = _limiter_names(files)
        relevant = [f for f in files if "starlette" in f.frameworks]
        for file in relevant:
            self._collect_apps(file)
        for file in relevant:
            self._collect_links(file)
        for file in relevant:
            self._collect_reads(file)

    # -- collection ---------------------------------------------------------------------------

    def _by_name(self, file: PyFile, name: str | None) -> StarletteApp | None:
        if not name:
            return None
        local = self.apps.get(f"{file.path}:{name}")
        if local is not None:
            return local
        # An app imported from another module: ``from main import app``.
        qualified = file.aliases.get(name)
        if qualified:
            short = qualified.rsplit(".", 1)[-1]
            for app in self.apps.values():
                if app.name == short:
                    return app
        return None

    def _collect_apps(self, file: PyFile) -> None:
        for node in ast.walk(file.tree):
            if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
                continue
            kind = last_name(node.value.func) or ""
            if kind not in _APP_CLASSES and kind not in _ROUTER_CLASSES:
                continue
            target = node.targets[0]
            name = dotted(target) or ""
            app = StarletteApp(file.path, node.lineno, name, kind)
            self.apps[app.key] = app
            for mw in _list_items(keyword(node.value, "middleware")):
                limiter = self._limiter_of(mw)
                if limiter:
                    app.capped_by = limiter

    def _limiter_of(self, node: ast.AST) -> str:
        """The limiter a ``Middleware(X, ...)`` / ``X`` / ``X(...)`` expression names, or ""."""
        if isinstance(node, ast.Call):
            name = last_name(node.func) or ""
            if name == "Middleware" and node.args:
                return self._limiter_of(node.args[0])
            options = " ".join(kw.arg or "" for kw in node.keywords)
            if name in self._limiters or _NAMED_LIMIT.search(f"{name} {options}"):
                return name
            return ""
        name = last_name(node) or ""
        return name if name in self._limiters or _NAMED_LIMIT.search(name) else ""

    def _collect_links(self, file: PyFile) -> None:
        for node in ast.walk(file.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = self._by_name(file, dotted(node.func.value))
                method = node.func.attr
                if owner is None or not node.args:
                    continue
                if method == "add_middleware":
                    limiter = self._limiter_of(ast.Call(func=node.args[0], args=[], keywords=node.keywords))
                    if limiter:
                        owner.capped_by = limiter
                elif method in ("mount", "include_router", "host"):
                    child_node = node.args[-1] if method != "include_router" else node.args[0]
                    child = self._by_name(file, dotted(keyword(node, "app") or child_node))
                    if child is not None:
                        child.parents.append(owner.key)
            elif isinstance(node, ast.Call) and last_name(node.func) == "Mount":
                # routes=[Mount("/sub", app=sub)] inside an app's constructor
                child = (
                    self._by_name(file, dotted(keyword(node, "app") or node.args[-1])) if node.args else None
                )
                parent = self._owner_of_constructor(file, node)
                if child is not None and parent is not None:
                    child.parents.append(parent.key)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                # app = BodyLimit(app, max_size=...): the wrapped app is capped
                limiter = self._limiter_of(node.value)
                if limiter and node.value.args:
                    wrapped = self._by_name(file, dotted(node.value.args[0]))
                    if wrapped is not None:
                        wrapped.capped_by = limiter

    def _owner_of_constructor(self, file: PyFile, node: ast.AST) -> StarletteApp | None:
        parent = file.parents.get(node)
        while parent is not None and not isinstance(parent, ast.Assign):
            parent = file.parents.get(parent)
        if isinstance(parent, ast.Assign):
            return self._by_name(file, dotted(parent.targets[0]))
        return None

    def _collect_reads(self, file: PyFile) -> None:
        registered = self._route_handlers(file)
        for scope in file.scopes[1:]:
            fn = scope.node
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            owners: list[str] = []
            wrapped = ""
            for deco in fn.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Attribute):
                    app = self._by_name(file, dotted(target.value))
                    if app is not None:
                        owners.append(app.key)
                limiter = self._limiter_of(deco if isinstance(deco, ast.Call) else target)
                if limiter and not isinstance(target, ast.Attribute):
                    wrapped = limiter
            owners.extend(registered.get(fn.name, ()))
            wrapped = wrapped or registered.get(f"{fn.name}#wrapped", ("",))[0]
            for node in file.own_nodes(scope):
                read = _read(file, node)
                if read is None or not isinstance(node, ast.Call):
                    continue
                self.reads.append(
                    StarletteRead(file.path, node.lineno, node.col_offset, read, tuple(owners), wrapped)
                )

    def _route_handlers(self, file: PyFile) -> dict[str, tuple[str, ...]]:
        """``Route("/x", handler)`` in an app's routes: handler name -> app keys (and wrappers)."""
        out: dict[str, tuple[str, ...]] = {}
        for node in ast.walk(file.tree):
            if not (isinstance(node, ast.Call) and last_name(node.func) in ("Route", "add_route")):
                continue
            endpoint = keyword(node, "endpoint") or (node.args[1] if len(node.args) > 1 else None)
            if endpoint is None:
                continue
            if isinstance(endpoint, ast.Call):
                limiter = self._limiter_of(endpoint)
                inner = endpoint.args[0] if endpoint.args else None
                name = last_name(inner) if inner is not None else None
                if limiter and name:
                    out[f"{name}#wrapped"] = (limiter,)
                continue
            name = last_name(endpoint)
            owner = self._owner_of_constructor(file, node)
            if isinstance(node.func, ast.Attribute):
                owner = self._by_name(file, dotted(node.func.value)) or owner
            if name and owner is not None:
                out[name] = (*out.get(name, ()), owner.key)
        return out

    # -- questions ----------------------------------------------------------------------------

    def cap_of(self, key: str, _seen: frozenset[str] = frozenset()) -> str:
        """What caps app ``key`` (its own limiter or a parent's), or ""."""
        app = self.apps.get(key)
        if app is None or key in _seen:
            return ""
        if app.capped_by:
            return app.capped_by
        for parent in app.parents:
            cap = self.cap_of(parent, _seen | {key})
            if cap:
                return cap
        return ""

    def apps_of(self, read: StarletteRead) -> list[StarletteApp]:
        """The applications (not routers) ``read`` runs in."""
        keys = list(read.owners)
        if not keys:
            same_module = [
                a.key for a in self.apps.values() if a.path == read.path and a.kind in _APP_CLASSES
            ]
            keys = same_module or [a.key for a in self.apps.values() if a.kind in _APP_CLASSES]
        out: list[StarletteApp] = []
        seen: set[str] = set()
        while keys:
            key = keys.pop()
            if key in seen or key not in self.apps:
                continue
            seen.add(key)
            app = self.apps[key]
            if app.kind in _APP_CLASSES:
                out.append(app)
            else:
                keys.extend(app.parents)  # a router runs in the apps that include it
        return out

    def read_capped(self, read: StarletteRead) -> str:
        """What bounds ``read`` ("" when nothing does)."""
        if read.wrapped_by:
            return read.wrapped_by
        apps = self.apps_of(read)
        if not apps:
            return ""
        caps = [self.cap_of(app.key) for app in apps]
        return caps[0] if all(caps) else ""

    def reads_in(self, path: str) -> list[StarletteRead]:
        return [r for r in self.reads if r.path == path]


def _list_items(node: ast.AST | None) -> list[ast.expr]:
    return list(node.elts) if isinstance(node, ast.List | ast.Tuple) else []


def _read(file: PyFile, node: ast.AST) -> str | None:
    """``request.body()`` / ``json()`` / ``form()``, or an uncounted ``request.stream()`` loop."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    if node.func.attr not in _READ_CALLS or not is_request_like(node.func.value) or node.args:
        return None
    if node.func.attr == "stream":
        loop = enclosing_loop(node, file.parents) if file.parents.get(node) is not None else None
        if loop is None:
            holder = file.parents.get(node)
            loop = holder if isinstance(holder, ast.For | ast.AsyncFor) else None
        if loop is None or loop_is_counted(loop) or not _accumulates(loop):
            return None  # counted, or hashed chunk by chunk: nothing is buffered whole
        return "chunks of request.stream() accumulated"
    return f"request.{node.func.attr}()"


def _accumulates(loop: ast.AST) -> bool:
    """Whether a loop keeps its chunks (``body += chunk``, ``chunks.append(chunk)``)."""
    for node in ast.walk(loop):
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            return True
        if isinstance(node, ast.Call) and last_name(node.func) in ("append", "extend", "write"):
            return True
    return False


def _limiter_names(files: list[PyFile]) -> frozenset[str]:
    """Project classes and functions that limit bodies by what they do (see the module doc)."""
    names = set(_KNOWN_LIMITERS)
    for file in files:
        text = file.source.text
        if not _DOES_LIMIT.search(text):
            continue
        for node in ast.walk(file.tree):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = ast.get_source_segment(text, node) or ""
            reads_stream = "receive" in body or "call_next" in body or ".stream(" in body
            if reads_stream and _DOES_LIMIT.search(body) and re.search(r"[<>]=?", body):
                names.add(node.name)
    return frozenset(names)
