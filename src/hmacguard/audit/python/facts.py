"""What the whole Python project says about body limits, gathered before any rule runs.

A Flask read is bounded only if *some* module sets ``MAX_CONTENT_LENGTH``; a Django ``request.body``
only if no settings module lifts ``DATA_UPLOAD_MAX_MEMORY_SIZE``; a Starlette app only if a
limiting middleware is installed somewhere. So rules about one file need facts from all of them:
this module collects them (settings, app constructors, body reads, middleware, ASGI use) and the
index of function definitions that lets the data flow follow calls into project functions.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal, TypeVar

from hmacguard.audit.config.deployment import DeploymentFile, ServerCommand
from hmacguard.audit.model import SIZE_THRESHOLD
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import (
    FunctionScope,
    PyFile,
    Unknown,
    const_eval,
    dotted,
    is_request_like,
    keyword,
    last_name,
    string_value,
)
from hmacguard.audit.python.guards import has_strict_length_guard
from hmacguard.audit.python.starlette_apps import StarletteApps
from hmacguard.audit.python.taint import Summary

__all__ = ["FACT_WORDS", "SINK_PATTERN", "CapState", "PythonFacts", "Setting"]

#: A Python file mentioning one of these is parsed for its facts even if no rule needs it.
FACT_WORDS = (
    "get_asgi_application", "django.core.asgi", "MAX_CONTENT_LENGTH", "max_content_length",
    "DATA_UPLOAD_MAX_MEMORY_SIZE", "client_max_size", "add_middleware", "Middleware(",
    # a body limiter of the project's own (recognised by what it does: see starlette_apps)
    "413", "TOO_LARGE", "Too Large", "too large", "TooLarge",
)  # fmt: skip

CapState = Literal["unset", "ok", "high", "disabled", "unknown"]
# Functions whose text mentions none of these cannot matter to a caller's data flow.
_FLOW_WORDS = ("hmac", "hashlib", "digest", "request", "update(", "sign", "verif", "body")
_LIMIT_MIDDLEWARE = re.compile(r"limit|size|max_?body|body_?max|cap\b|guard|413", re.IGNORECASE)
_FLASK_LOADERS = frozenset(
    {"from_object", "from_pyfile", "from_envvar", "from_prefixed_env", "from_file", "from_json"}
)
_FLASK_BODY_ATTRS = frozenset({"data", "json"})
_STREAM_ATTRS = frozenset({"stream", "input_stream"})
_FLASK_BODY_CALLS = frozenset({"get_data", "get_json"})
_STARLETTE_BODY_CALLS = frozenset({"body", "json", "stream"})
_MAX_DEFS_PER_NAME = 6
#: Text that marks a scope as hashing or verifying something.
_SINK_TEXT = re.compile(r"hmac|hashlib|\.update\(|signature|verif|digest|construct_event|\bsign\w*\(")
SINK_PATTERN = _SINK_TEXT.pattern


@dataclass(frozen=True)
class Setting:
    """One place a limit is set: its name, value (bytes, None, or UNKNOWN) and location."""

    name: str
    value: int | float | Unknown | None
    path: str
    line: int
    #: Passed to a call (``settings.configure(...)``): applies to its own module's project only.
    inline: bool = False

    @property
    def state(self) -> CapState:
        if isinstance(self.value, Unknown):
            return "unknown"
        if self.value is None or self.value <= 0:
            return "disabled"
        return "high" if self.value > SIZE_THRESHOLD else "ok"


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    what: str


_T = TypeVar("_T", Setting, Site)


_CONFIG_WORDS = (
    *FACT_WORDS, "Flask(", "Quart(", "(Flask)", "FastAPI(", "Starlette(", "Application(", "HmacGuard",
    "HMACGUARD",
)  # fmt: skip
_FLASK_READ_WORDS = ("get_data", "get_json", ".data", ".json", ".stream", ".input_stream")
_STARLETTE_READ_WORDS = (".body(", ".json(", ".stream(")


def _has_facts(text: str) -> bool:
    """Whether a file could hold any fact (a cheap text test before walking every node)."""
    if any(w in text for w in _CONFIG_WORDS):
        return True
    if ("flask" in text or "werkzeug" in text or "quart" in text) and any(
        w in text for w in _FLASK_READ_WORDS
    ):
        return True
    return ("starlette" in text or "fastapi" in text) and any(w in text for w in _STARLETTE_READ_WORDS)


def _is_stream(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in _STREAM_ATTRS and is_request_like(node.value)


def _scoped(items: list[_T], path: str, app_files: set[str]) -> list[_T]:
    """What applies to ``path``: a module that builds its own app is its own project; other
    modules (views, blueprints, config) belong to every app."""
    if path in app_files:
        return [i for i in items if i.path == path or i.path not in app_files]
    return list(items)


def _cap(settings: list[Setting], loaders: list[Site]) -> CapState:
    states = {s.state for s in settings}
    for state in ("ok", "high", "disabled"):
        if state in states:
            # A sane value anywhere wins: development configs often differ from production.
            return state  # type: ignore[return-value]
    if states or loaders:
        return "unknown"
    return "unset"


class PythonFacts:
    """Project-wide facts from every parsed Python file."""

    def __init__(self) -> None:
        self.files: list[PyFile] = []
        self.defs: defaultdict[str, list[tuple[PyFile, FunctionScope]]] = defaultdict(list)
        self.flask_limits: list[Setting] = []
        self.flask_loaders: list[Site] = []
        self.flask_apps: list[Site] = []
        self.flask_reads: list[Site] = []
        self.flask_guards: list[Site] = []
        self.django_guards: list[Site] = []
        self.django_limits: list[Setting] = []
        self.starlette_apps: list[Site] = []
        self.starlette_reads: list[Site] = []
        self.starlette_limiters: list[Site] = []
        self.aiohttp_limits: list[Setting] = []
        self.asgi: list[Site] = []
        #: Server commands from Dockerfile, Procfile, compose files and start scripts.
        self.servers: list[ServerCommand] = []
        #: client_max_body_size values from nginx files in the repository (bytes; 0 = unlimited).
        self.proxy_limits: list[Setting] = []
        self._starlette: StarletteApps | None = None
        self._summaries: dict[str, Summary | None] = {}
        self._hashing: frozenset[str] | None = None

    # -- collection -------------------------------------------------------------------------

    def add_deployment(self, deployment: DeploymentFile) -> None:
        self.servers.extend(deployment.servers)

    def add(self, file: PyFile) -> None:
        self.files.append(file)
        for scope in file.scopes[1:]:
            fn = scope.node
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                self.defs[fn.name].append((file, scope))
        if file.path.replace("\\", "/").endswith("/asgi.py") or file.path == "asgi.py":
            self.asgi.append(Site(file.path, 1, "asgi.py"))
        if not _has_facts(file.source.text):
            return  # nothing below can match: skip the full walk (most files of a large tree)
        names = file.module_names
        for stmt in file.tree.body:
            self._module_setting(file, stmt, names)
        for node in ast.walk(file.tree):
            if isinstance(node, ast.Call):
                self._call(file, node, names)
            elif isinstance(node, ast.Assign):
                self._assign(file, node, names)
            elif isinstance(node, ast.Attribute) and node.attr in _FLASK_BODY_ATTRS:
                if is_request_like(node.value) and "flask" in file.frameworks:
                    self.flask_reads.append(Site(file.path, node.lineno, f"request.{node.attr}"))
            elif isinstance(node, ast.For | ast.AsyncFor) and _is_stream(node.iter):
                if "flask" in file.frameworks:
                    self.flask_reads.append(Site(file.path, node.lineno, "for ... in request.stream"))
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    self._module_setting(file, stmt, names, flask_only=True)
                # class Server(Flask): ... — an application made by subclassing
                bases = {file.qualified(b) or "" for b in node.bases}
                if bases & {"flask.Flask", "quart.Quart"}:
                    self.flask_apps.append(Site(file.path, node.lineno, f"class {node.name}(Flask)"))
            elif isinstance(node, ast.ImportFrom) and node.module == "django.core.asgi":
                self.asgi.append(Site(file.path, node.lineno, "django.core.asgi"))

    def _flask_limit(self, name: str, value: int | float | Unknown | None, path: str, line: int) -> None:
        # MAX_CONTENT_LENGTH = None is Flask's default (no limit): the same as not setting it,
        # which the app-level check reports, so it is not a setting of its own.
        if value is not None:
            self.flask_limits.append(Setting(name, value, path, line))

    def _module_setting(
        self, file: PyFile, stmt: ast.stmt, names: dict[str, ast.expr], flask_only: bool = False
    ) -> None:
        if not isinstance(stmt, ast.Assign | ast.AnnAssign) or stmt.value is None:
            return
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            value = const_eval(stmt.value, names)
            if target.id == "MAX_CONTENT_LENGTH" or (target.id == "max_content_length" and flask_only):
                self._flask_limit(target.id, value, file.path, stmt.lineno)
            elif target.id == "DATA_UPLOAD_MAX_MEMORY_SIZE" and not flask_only:
                self.django_limits.append(Setting(target.id, value, file.path, stmt.lineno))
            elif target.id == "HMACGUARD" and not flask_only:
                self.django_guards.append(Site(file.path, stmt.lineno, "HMACGUARD"))

    def _assign(self, file: PyFile, node: ast.Assign, names: dict[str, ast.expr]) -> None:
        for target in node.targets:
            # app.config["MAX_CONTENT_LENGTH"] = N
            if isinstance(target, ast.Subscript) and string_value(target.slice) == ("MAX_CONTENT_LENGTH"):
                value = const_eval(node.value, names)
                self._flask_limit("MAX_CONTENT_LENGTH", value, file.path, node.lineno)
            # request.max_content_length = N (Flask 3.1, per request) or app.max_content_length
            elif isinstance(target, ast.Attribute) and target.attr == "max_content_length":
                value = const_eval(node.value, names)
                self._flask_limit("max_content_length", value, file.path, node.lineno)
            elif isinstance(target, ast.Subscript) and string_value(target.slice) == (
                "DATA_UPLOAD_MAX_MEMORY_SIZE"
            ):
                value = const_eval(node.value, names)
                self.django_limits.append(
                    Setting("DATA_UPLOAD_MAX_MEMORY_SIZE", value, file.path, node.lineno)
                )

    def _call(self, file: PyFile, node: ast.Call, names: dict[str, ast.expr]) -> None:
        qualified = file.qualified(node.func) or ""
        name = last_name(node.func) or ""
        line = node.lineno
        for kw in node.keywords:
            if kw.arg == "DATA_UPLOAD_MAX_MEMORY_SIZE":
                value = const_eval(kw.value, names)
                self.django_limits.append(Setting(kw.arg, value, file.path, kw.value.lineno, inline=True))
            elif kw.arg == "HMACGUARD":
                self.django_guards.append(Site(file.path, line, "HMACGUARD="))
            elif kw.arg == "MAX_CONTENT_LENGTH":
                value = const_eval(kw.value, names)
                self._flask_limit(kw.arg, value, file.path, kw.value.lineno)
        if isinstance(node.func, ast.Attribute) and name == "update" and node.args:
            mapping = node.args[0]
            if isinstance(mapping, ast.Dict):
                for k, v in zip(mapping.keys, mapping.values, strict=False):
                    if string_value(k) == "MAX_CONTENT_LENGTH":
                        self._flask_limit("MAX_CONTENT_LENGTH", const_eval(v, names), file.path, line)
        if name in _FLASK_LOADERS and "config" in (dotted(node.func) or ""):
            self.flask_loaders.append(Site(file.path, line, f"config.{name}()"))
        if qualified.startswith("hmacguard.") and name == "HmacGuard":
            self.flask_guards.append(Site(file.path, line, "HmacGuard()"))
        if qualified in ("flask.Flask", "quart.Quart") or (name == "Flask" and "flask" in file.frameworks):
            self.flask_apps.append(Site(file.path, line, "Flask()"))
        elif qualified in ("fastapi.FastAPI", "starlette.applications.Starlette") or (
            name in ("FastAPI", "Starlette") and "starlette" in file.frameworks
        ):
            self.starlette_apps.append(Site(file.path, line, f"{name}()"))
        elif name == "Application" and "aiohttp" in file.frameworks:
            value = const_eval(keyword(node, "client_max_size"), names)
            if keyword(node, "client_max_size") is not None:
                self.aiohttp_limits.append(Setting("client_max_size", value, file.path, line))
        if name == "get_asgi_application":
            self.asgi.append(Site(file.path, line, "get_asgi_application()"))
        if name in ("add_middleware", "Middleware") and node.args:
            text = " ".join([dotted(node.args[0]) or "", *(kw.arg or "" for kw in node.keywords)])
            if _LIMIT_MIDDLEWARE.search(text):
                self.starlette_limiters.append(Site(file.path, line, text.strip()))
        if (
            isinstance(node.func, ast.Attribute)
            and name in ("read", "readlines")
            and _is_stream(node.func.value)
            and "flask" in file.frameworks
            and (not node.args or const_eval(node.args[0]) in (None, -1))
        ):
            self.flask_reads.append(Site(file.path, line, f"request.stream.{name}()"))
        if isinstance(node.func, ast.Attribute) and is_request_like(node.func.value):
            if name in _FLASK_BODY_CALLS and "flask" in file.frameworks:
                self.flask_reads.append(Site(file.path, line, f"request.{name}()"))
            if name in _STARLETTE_BODY_CALLS and "starlette" in file.frameworks:
                self.starlette_reads.append(Site(file.path, line, f"request.{name}()"))

    # -- questions --------------------------------------------------------------------------

    def _files(self, sites: list[Site]) -> set[str]:
        return {s.path for s in sites}

    def server_cap(self) -> CapState:
        """The body cap the repository's WSGI server enforces ("unset" when none states one).

        Only when every WSGI server command states a cap (mod_wsgi-express always does): one
        uncapped way of serving the app is enough to be unbounded.
        """
        wsgi = [s for s in self.servers if s.interface == "wsgi"]
        if not wsgi or any(s.body_limit is None for s in wsgi):
            return "unset"
        return _cap([Setting("server", s.body_limit, "", s.line) for s in wsgi], [])

    def proxy_cap(self) -> CapState:
        """The body cap an nginx configuration in the repository enforces ("unset": none).

        Every ``client_max_body_size`` must be a real cap: one unlimited server block is enough
        to reach the app unbounded.
        """
        if not self.proxy_limits:
            return "unset"
        states = {s.state for s in self.proxy_limits}
        if "disabled" in states:
            return "disabled"
        return "high" if "high" in states else "ok"

    def flask_cap(self, path: str) -> CapState:
        """Whether Flask body reads in ``path`` are bounded by MAX_CONTENT_LENGTH (or our guard)."""
        apps = self._files(self.flask_apps)
        if _scoped(self.flask_guards, path, apps):
            return "ok"
        for outside in (self.server_cap(), self.proxy_cap()):
            if outside in ("ok", "high"):
                return outside
        return _cap(_scoped(self.flask_limits, path, apps), _scoped(self.flask_loaders, path, apps))

    def flask_reads_for(self, path: str) -> list[Site]:
        """Whole-body Flask reads that concern the app(s) of ``path``, except reads made after a
        strict Content-Length check (which bounds them by the length the server frames)."""
        by_path = {f.path: f for f in self.files}
        out = []
        for site in _scoped(self.flask_reads, path, self._files(self.flask_apps)):
            file = by_path.get(site.path)
            if file is not None and has_strict_length_guard(file.own_nodes(file.scope_at(site.line))):
                continue
            out.append(site)
        return out

    def django_cap(self, path: str) -> CapState:
        """DATA_UPLOAD_MAX_MEMORY_SIZE as it applies to ``path`` ("ok" = Django's 2.5 MB default).

        Settings passed to a call in a module (``settings.configure(...)``) configure that
        module's one-module project; settings modules configure everything else.
        """
        if any(g.path == path for g in self.django_guards):
            return "ok"  # hmacguard in front of Django verifies under its own cap
        inline_here = [s for s in self.django_limits if s.inline and s.path == path]
        if inline_here:
            return _cap(inline_here, [])
        module_level = [s for s in self.django_limits if not s.inline]
        return _cap(module_level, []) if module_level else "ok"

    @property
    def aiohttp_cap(self) -> CapState:
        if not self.aiohttp_limits:
            return "ok"  # aiohttp's default client_max_size: 1 MiB
        return _cap(self.aiohttp_limits, [])

    @property
    def starlette(self) -> StarletteApps:
        """Starlette/FastAPI apps, reads and caps, scoped per application (built on first use)."""
        if self._starlette is None:
            self._starlette = StarletteApps(self.files)
        return self._starlette

    def starlette_capped(self, path: str, line: int | None = None) -> bool:
        """Whether the read at ``path:line`` (or every read of ``path``) is bounded by a limiter
        of its own application, a parent app, a wrapper, or a server/proxy cap in the repo."""
        if self.server_cap() in ("ok", "high") or self.proxy_cap() in ("ok", "high"):
            return True
        apps = self.starlette
        reads = [r for r in apps.reads_in(path) if line is None or r.line == line]
        if reads:
            return all(apps.read_capped(r) for r in reads)
        # Not a read this module knows (e.g. a helper): every app of the module, or of the project.
        own = [a for a in apps.apps.values() if a.path == path and a.kind in ("FastAPI", "Starlette")]
        pool = own or [a for a in apps.apps.values() if a.kind in ("FastAPI", "Starlette")]
        return bool(pool) and all(apps.cap_of(a.key) for a in pool)

    def hashing_function_names(self) -> frozenset[str]:
        """Project functions whose text mentions a hash or signature (candidate sinks)."""
        cached = self._hashing
        if cached is None:
            cached = frozenset(
                name
                for name, defs in self.defs.items()
                if len(defs) <= _MAX_DEFS_PER_NAME
                and any(_SINK_TEXT.search(f.scope_text(s)) for f, s in defs)
            )
            self._hashing = cached
        return cached

    def summary(self, name: str) -> Summary | None:
        """What calling project function ``name`` does; None when it is not (uniquely) ours."""
        if name in self._summaries:
            return self._summaries[name]
        defs = self.defs.get(name)
        if not defs or len(defs) > _MAX_DEFS_PER_NAME:
            self._summaries[name] = None
            return None
        self._summaries[name] = Summary()  # recursion guard: a cycle contributes nothing
        merged = Summary()
        for file, scope in defs:
            text = file.scope_text(scope)
            if not any(w in text for w in _FLOW_WORDS):
                continue
            part = Flow(file, scope, self, seed_params=True).summarize()
            merged.params_to_sink |= part.params_to_sink
            merged.returns |= part.returns
            merged.returned_sources |= part.returned_sources
        self._summaries[name] = merged
        return merged
