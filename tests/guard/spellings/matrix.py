"""The matrix as data: the configurations under test, the spellings sent, what each answer means, the table.

Framework-free (the apps are built in :mod:`.apps`), so the tests can be parametrized at collection.

A *configuration* is one integration guarding one small application whose protected view answers
with :data:`PROTECTED_MARK` (body) and ``X-Matrix-View: protected`` (header). An unsigned request
*reaches* the view when either comes back. Every application also has an unprotected view
(``X-Matrix-View: other``); those marked ``catchall`` have a catch-all route (``catchall``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SECRET = "spellings-matrix-secret"
ROOT = "/api"
#: The request header the test servers dispatch on (it never changes the path a guard sees).
APP_HEADER = "X-Matrix-App"
VIEW_HEADER = "X-Matrix-View"
#: Added by the dispatcher to every answer the applications give: one without it is the server's own.
SERVED_HEADER = "X-Matrix-Served"
PROTECTED_MARK = "hmacguard-matrix:PROTECTED-VIEW-REACHED"
OTHER_MARK = "hmacguard-matrix:other-view"
CATCHALL_MARK = "hmacguard-matrix:catch-all"

MOUNTS = ("plain", "prefix", "root")


@dataclass(frozen=True)
class Config:
    """One integration around one application.

    ``protected``: the canonical, app-relative request paths of the protected views; ``open``: the
    app-relative paths of unprotected views, which unsigned requests must reach; ``near``: paths
    that are not spellings of a protected path and must not be refused by the guard (they reach the
    catch-all when there is one); ``prefix``: where the ``prefix`` mount puts the application, and
    ``prefix_how`` how.
    """

    key: str
    name: str
    family: str  # "wsgi" or "asgi"
    protected: tuple[str, ...]
    open: tuple[str, ...]
    prefix: str
    prefix_how: str
    near: tuple[str, ...] = ("/webhooks", "/webhook2", "/webhook.json", "/web/hook")
    catchall: bool = False
    #: Other app-relative paths the framework routes to a protected view (Django's language
    #: prefixes), each sent in a few spellings of its own.
    aliases: tuple[str, ...] = ()


_DJANGO_NEAR = ("/webhooks/", "/webhook2/", "/webhook.json", "/web/hook/", "/en/intl/webhook/")
# i18n_patterns(prefix_default_language=False) routes these to the view at /intl/webhook/.
_DJANGO_LANGUAGES = ("/fr/intl/webhook/", "/de/intl/webhook/")

CONFIGS: tuple[Config, ...] = (
    Config("wsgiguard-flask", "WSGIGuard(Flask)", "wsgi", ("/webhook", "/in/github"), ("/other",),
           "/hooks", "DispatcherMiddleware"),
    Config("flask-ext-paths", "Flask HmacGuard paths=", "wsgi", ("/webhook",), ("/other",),
           "/hooks", "DispatcherMiddleware"),
    Config("flask-ext-decorator", "Flask HmacGuard @protected", "wsgi", ("/webhook",), ("/other",),
           "/hooks", "DispatcherMiddleware"),
    Config("flask-ext-blueprint", "Flask HmacGuard @protected in Blueprint", "wsgi", ("/bp/webhook",),
           ("/other", "/bp/other"), "/hooks", "DispatcherMiddleware",
           near=("/bp/webhooks", "/bp", "/webhook", "/bpwebhook")),
    Config("flask-ext-inner-mount", "Flask HmacGuard paths= over app.wsgi_app mounted at /inner", "wsgi",
           ("/inner/webhook",), ("/inner/other",), "/hooks", "DispatcherMiddleware",
           near=("/inner/webhooks", "/inner/webhook.json", "/inner/web/hook")),
    Config("flask-catchall", "Flask HmacGuard @protected + catch-all", "wsgi", ("/webhook",), ("/other",),
           "/hooks", "DispatcherMiddleware", catchall=True),
    # The generic middleware sees paths, not Django's views: it lists every language's path.
    Config("wsgiguard-django", "WSGIGuard(Django)", "wsgi", ("/webhook/", "/intl/webhook/"),
           ("/other/",), "/hooks", "DispatcherMiddleware + FORCE_SCRIPT_NAME", near=_DJANGO_NEAR,
           aliases=_DJANGO_LANGUAGES),
    Config("django-wsgi", "Django get_wsgi_application", "wsgi", ("/webhook/", "/intl/webhook/"),
           ("/other/",), "/hooks", "DispatcherMiddleware + FORCE_SCRIPT_NAME", near=_DJANGO_NEAR,
           aliases=_DJANGO_LANGUAGES),
    Config("asgiguard-starlette", "ASGIGuard(Starlette)", "asgi", ("/webhook", "/in/github"), ("/other",),
           "/v1", "Starlette Mount"),
    Config("asgiguard-fastapi", "ASGIGuard in FastAPI", "asgi", ("/webhook",), ("/other",),
           "/v1", "app.mount"),
    Config("fastapi-dependency", "FastAPI VerifiedBodyDependency", "asgi", ("/webhook",), ("/other",),
           "/v1", "app.mount"),
    Config("starlette-catchall", "ASGIGuard(Starlette) + catch-all", "asgi", ("/webhook",), ("/other",),
           "/v1", "Starlette Mount", catchall=True),
    Config("django-asgi", "Django get_asgi_application", "asgi", ("/webhook/", "/intl/webhook/"),
           ("/other/",), "/hooks", "FORCE_SCRIPT_NAME", near=_DJANGO_NEAR, aliases=_DJANGO_LANGUAGES),
)  # fmt: skip
BY_KEY = {c.key: c for c in CONFIGS}

#: The servers: in-process drivers and real ones, per family.
SERVERS = {
    "wsgi": ("gunicorn-sync", "gunicorn-gthread", "hypercorn"),
    "asgi": ("uvicorn", "hypercorn"),
}


def mount_label(config: Config, mount: str) -> str:
    if mount == "plain":
        return "plain"
    if mount == "prefix":
        return f"prefix {config.prefix} ({config.prefix_how})"
    return f"root path {ROOT}"


def request_prefix(config: Config, mount: str, server: str) -> str:
    """What precedes the app-relative path in the request target.

    Under a root path a proxy has usually removed it already: uvicorn (and the in-process driver
    that imitates it) puts ``root_path + path`` in ``scope["path"]``, so the request comes without
    it; gunicorn's ``SCRIPT_NAME`` and hypercorn's ``--root-path`` expect it in the target.
    """
    if mount == "plain":
        return ""
    if mount == "prefix":
        return config.prefix
    return "" if server in ("uvicorn", "in-process uvicorn-style") else ROOT


# -- spellings -------------------------------------------------------------------------------------


def _pct(ch: str, lower: bool = False) -> str:
    code = "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
    return code.lower() if lower else code


def spellings(prefix: str, path: str) -> list[tuple[str, str]]:
    """(label, request target) for unsigned requests: every way we know to spell ``prefix + path``.

    ``path`` is app-relative (``/webhook``, ``/bp/webhook``, ``/webhook/``); the spellings bend its
    last segment, the slashes around it, the prefix, and the target's form. Targets are ASCII and
    distinct; a few are not valid HTTP on purpose (servers refuse them; the table shows it).
    """
    trail = "/" if path.endswith("/") and path != "/" else ""
    segments = path.strip("/").split("/")
    leaf = segments[-1]
    head = "".join("/" + s for s in segments[:-1])
    b = prefix + head  # everything before "/leaf"
    base = f"{b}/{leaf}{trail}"
    toggled = f"{b}/{leaf}" + ("" if trail else "/")
    first, rest = leaf[0], leaf[1:]
    mid = len(leaf) // 2
    out = [
        ("canonical", base),
        ("double slash", f"{b}//{leaf}{trail}"),
        ("triple slash", f"{b}///{leaf}{trail}"),
        ("leading double slash", f"/{base}"),
        ("leading quadruple slash", f"////{base.lstrip('/')}"),
        ("%2F before the leaf", f"{b}/%2F{leaf}{trail}"),
        ("%2f before the leaf", f"{b}/%2f{leaf}{trail}"),
        ("%2F for the slash", f"{b}%2F{leaf}{trail}"),
        ("%2F%2F before the leaf", f"{b}/%2F%2F{leaf}{trail}"),
        ("trailing slash toggled", toggled),
        ("two trailing slashes", f"{b}/{leaf}//"),
        ("trailing %2F", f"{b}/{leaf}%2F"),
        ("trailing /.", f"{b}/{leaf}/."),
        ("trailing /%2e", f"{b}/{leaf}/%2e"),
        ("/./ before the leaf", f"{b}/./{leaf}{trail}"),
        ("//./ before the leaf", f"{b}//./{leaf}{trail}"),
        ("/x/../ before the leaf", f"{b}/x/../{leaf}{trail}"),
        ("trailing /x/..", f"{b}/{leaf}/x/.."),
        ("leaf/../leaf", f"{b}/{leaf}/../{leaf}{trail}"),
        ("/%2e/ before the leaf", f"{b}/%2e/{leaf}{trail}"),
        ("/x/%2e%2e/ before the leaf", f"{b}/x/%2e%2e/{leaf}{trail}"),
        ("/x/.%2E/ before the leaf", f"{b}/x/.%2E/{leaf}{trail}"),
        ("/x/%2e%2e%2f before the leaf", f"{b}/x/%2e%2e%2f{leaf}{trail}"),
        ("/x%2F..%2F before the leaf", f"{b}/x%2F..%2F{leaf}{trail}"),
        ("/x/..;/ before the leaf", f"{b}/x/..;/{leaf}{trail}"),
        ("first letter %-encoded", f"{b}/{_pct(first)}{rest}{trail}"),
        ("middle letter %-encoded, lower hex",
         f"{b}/{leaf[:mid]}{_pct(leaf[mid], lower=True)}{leaf[mid + 1:]}{trail}"),
        ("whole leaf %-encoded", f"{b}/{''.join(_pct(c) for c in leaf)}{trail}"),
        ("first letter double-encoded", f"{b}/%25{_pct(first)[1:]}{rest}{trail}"),
        ("%252F before the leaf", f"{b}/%252F{leaf}{trail}"),
        ("%25252F before the leaf", f"{b}/%25252F{leaf}{trail}"),
        (";param on the leaf", f"{b}/{leaf};v=1{trail}"),
        ("empty ;param on the leaf", f"{b}/{leaf};{trail}"),
        ("/;/ before the leaf", f"{b}/;/{leaf}{trail}"),
        ("%3B param on the leaf", f"{b}/{leaf}%3Bv=1{trail}"),
        ("leaf upper case", f"{b}/{leaf.upper()}{trail}"),
        ("leaf capitalised", f"{b}/{leaf.capitalize()}{trail}"),
        ("whole target upper case", base.upper()),
        ("backslash for the slash", f"{b}\\{leaf}{trail}"),
        ("backslash before the leaf", f"{b}/\\{leaf}{trail}"),
        ("%5C before the leaf", f"{b}/%5C{leaf}{trail}"),
        ("%5C for the slash", f"{b}%5C{leaf}{trail}"),
        ("absolute-form", f"http://x{base}"),
        ("absolute-form, double slash", f"http://x{b}//{leaf}{trail}"),
        ("absolute-form with port", f"http://127.0.0.1:80{base}"),
        ("absolute-form https", f"https://x{base}"),
        ("empty query", f"{base}?"),
        ("query", f"{base}?a=1&b=%2F"),
        ("query with a path", f"{base}?/other"),
        ("fragment", f"{base}#frag"),
        ("trailing %20", f"{b}/{leaf}%20{trail}"),
        ("trailing dot", f"{b}/{leaf}.{trail}"),
        ("trailing %2e", f"{b}/{leaf}%2e{trail}"),
        ("trailing %00", f"{b}/{leaf}%00{trail}"),
        ("trailing %09", f"{b}/{leaf}%09{trail}"),
        ("trailing %0A", f"{b}/{leaf}%0A{trail}"),
        ("overlong UTF-8 slash %C0%AF", f"{b}/%C0%AF{leaf}{trail}"),
        ("%u-encoded first letter", f"{b}/%u{ord(first):04x}{rest}{trail}"),
        ("full-width solidus", f"{b}%EF%BC%8F{leaf}{trail}"),
    ]  # fmt: skip
    if "k" in leaf:  # the Kelvin sign case-folds to "k"
        out.append(("Kelvin sign for k", f"{b}/{leaf.replace('k', '%E2%84%AA', 1)}{trail}"))
    if prefix:
        out += [
            ("%2F after the prefix", f"{prefix}%2F{(head + '/' + leaf).lstrip('/')}{trail}"),
            ("double slash after the prefix", f"{prefix}/{base[len(prefix) :]}"),
            ("prefix/../prefix", f"{prefix}/..{base}"),
            ("prefix upper case", f"{prefix.upper()}{base[len(prefix) :]}"),
            ("prefix %-encoded letter", f"{prefix[:1]}{_pct(prefix[1])}{base[2:]}"),
        ]
    seen: set[str] = set()
    unique = []
    for label, target in out:
        if target not in seen and (target.startswith("/") or target.startswith("http")):
            seen.add(target)
            unique.append((label, target))
    return unique


# -- requests and answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request of the matrix. ``expect``: ``"refused"`` (any answer but the protected view),
    ``"guard"`` (refused by the guard itself),
    ``"protected"`` (signed: must reach it), ``"other"`` / ``"catchall"`` (that view), ``"not-guard"``
    (anything but a refusal by the guard)."""

    config: str
    kind: str  # "spelling", "signed", "open", "near"
    label: str
    target: str
    expect: str
    method: str = "POST"
    signed: bool = False


def probes(config: Config, mount: str, server: str) -> list[Probe]:
    """The requests one configuration gets under one mount and server."""
    prefix = request_prefix(config, mount, server)
    out: list[Probe] = []
    for path in config.protected:
        for label, target in spellings(prefix, path):
            # The canonical path, unsigned, must be the guard's refusal (a matrix that only ever
            # saw 404s would prove nothing).
            expect = "guard" if label == "canonical" else "refused"
            out.append(Probe(config.key, "spelling", f"{path}: {label}", target, expect))
        if prefix:
            # The same path without the prefix: Django strips FORCE_SCRIPT_NAME only when it is
            # there, hypercorn and Starlette route a path without the root path as it is.
            for label, target in spellings("", path)[:6]:
                out.append(
                    Probe(config.key, "spelling", f"{path}: {label}, without {prefix}", target, "refused")
                )
    for alias in config.aliases:
        for label, target in spellings(prefix, alias)[:8]:
            out.append(Probe(config.key, "spelling", f"{alias}: {label}", target, "refused"))
    out.append(Probe(config.key, "signed", "signed, canonical", prefix + config.protected[0], "protected",
                     signed=True))  # fmt: skip
    for path in config.open:
        out.append(Probe(config.key, "open", f"unprotected {path}", prefix + path, "other"))
    for path in config.near:
        expect = "catchall" if config.catchall else "not-guard"
        out.append(Probe(config.key, "near", f"near miss {path}", prefix + path, expect))
    return out


def signed_body(config: Config, mount: str, server: str) -> bytes:
    """A body unique to the configuration (signed bodies are deliveries: the same one twice is a replay)."""
    return json.dumps({"config": config.key, "mount": mount, "server": server}).encode()


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def view(self) -> str | None:
        """Which of the test application's views answered (``None``: none of them)."""
        named = self.headers.get(VIEW_HEADER.lower())
        if named:
            return named
        for mark, view in ((PROTECTED_MARK, "protected"), (OTHER_MARK, "other"), (CATCHALL_MARK, "catchall")):
            if mark.encode() in self.body:
                return view
        return None

    @property
    def by_guard(self) -> bool:
        """A refusal by the guard: 4xx, problem+json, no view."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.headers.get("content-type", "").startswith("application/problem+json")
            and self.view is None
        )

    def outcome(self) -> str:
        """``reached`` (the protected view answered), ``guard`` (refused by the guard), ``server 400``
        (answered by the server without calling the application), or the status and view: ``404``,
        ``200 other``..."""
        view = self.view
        if view == "protected":
            return "reached"
        if self.by_guard:
            return "guard"
        if self.status is None:
            return "no answer"
        if SERVED_HEADER.lower() not in self.headers:
            return f"server {self.status}"
        return f"{self.status} {view}" if view else str(self.status)


def meets(probe: Probe, answer: Answer) -> bool:
    outcome = answer.outcome()
    if probe.expect == "refused":
        return outcome != "reached"
    if probe.expect == "guard":
        return outcome == "guard"
    if probe.expect == "protected":
        return outcome == "reached" and answer.status == 200
    if probe.expect in ("other", "catchall"):
        return answer.view == probe.expect and answer.status == 200
    if probe.expect == "not-guard":
        return outcome not in ("reached", "guard")
    raise ValueError(probe.expect)


# -- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    integration: str
    mount: str
    server: str
    sent: int = 0
    reached: int = 0
    guard: int = 0
    other: Counter[str] = field(default_factory=Counter)
    sanity_failures: list[str] = field(default_factory=list)
    reached_targets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "other": dict(self.other)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Row:
        row = cls(**data)  # type: ignore[arg-type]
        row.other = Counter(row.other)
        return row


def tally(config: Config, mount: str, server: str, results: Iterable[tuple[Probe, Answer]]) -> Row:
    """One table row from the answers of one configuration under one mount and server."""
    row = Row(config.name, mount_label(config, mount), server)
    for probe, answer in results:
        outcome = answer.outcome()
        if probe.kind == "spelling":
            row.sent += 1
            if outcome == "reached":
                row.reached += 1
                row.reached_targets.append(f"{probe.target!r} ({probe.label})")
            elif outcome == "guard":
                row.guard += 1
            else:
                row.other[outcome] += 1
            if outcome != "reached" and not meets(probe, answer):  # a reach is counted above
                row.sanity_failures.append(f"{probe.label} {probe.target!r}: {outcome}")
        elif not meets(probe, answer):
            row.sanity_failures.append(f"{probe.label} {probe.target!r}: {outcome}")
    return row


def _other(counter: Counter[str]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def table(rows: Sequence[Row]) -> str:
    """The Markdown table for the closing note."""
    lines = [
        "| integration | mount | server | spellings sent | reached view | refused 4xx by the guard "
        "| other answers |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        cells = [r.integration, r.mount, r.server, r.sent, r.reached, r.guard, _other(r.other)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    total = sum(r.sent for r in rows)
    reached = sum(r.reached for r in rows)
    guard = sum(r.guard for r in rows)
    lines.append(f"| **total** ({len(rows)} rows) | | | {total} | {reached} | {guard} | |")
    return "\n".join(lines)


def request_parts(
    config: Config, probe: Probe, mount: str, server: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (in order) and body of ``probe``: unsigned ``{}``, or the configuration's signed body."""
    from hmacguard import Signer

    body = signed_body(config, mount, server) if probe.signed else b"{}"
    headers = [("Host", "127.0.0.1"), (APP_HEADER, config.key), ("Content-Type", "application/json")]
    if probe.signed:
        headers += [(k, v) for k, v in Signer("github", secrets=SECRET).sign(body).items()
                    if k.lower() != "content-type"]  # fmt: skip
    headers += [("Content-Length", str(len(body))), ("Connection", "close")]
    return headers, body


def raw_request(method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def summary(rows: Sequence[Row]) -> str:
    """The compact table: integration x server, each cell ``reached / sent`` over every mount."""
    servers: list[str] = []
    cells: dict[tuple[str, str], list[int]] = {}
    integrations: list[str] = []
    for r in rows:
        server = "in-process" if r.server.startswith("in-process") else r.server
        if server not in servers:
            servers.append(server)
        if r.integration not in integrations:
            integrations.append(r.integration)
        cell = cells.setdefault((r.integration, server), [0, 0, 0])
        cell[0] += r.reached
        cell[1] += r.sent
        cell[2] += 1
    lines = [
        "| integration (plain, prefix, root path) | " + " | ".join(servers) + " |",
        "| --- |" + " ---: |" * len(servers),
    ]
    for name in integrations:
        row = [f"{c[0]} / {c[1]}" if (c := cells.get((name, s))) else "-" for s in servers]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)
