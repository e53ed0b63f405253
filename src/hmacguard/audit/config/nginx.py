"""The nginx front end: crossplane (nginx's own parser for tooling), one file at a time.

A ``.conf`` file is read as nginx configuration when its name or folder says nginx or when it
contains nginx block syntax (``server {``, ``http {``, ``location ... {``) or a body-size
directive; other ``.conf`` files (supervisord, fail2ban...) are left alone. Includes are not
followed (each file is audited on its own), and directives are accepted in any context, since
``conf.d`` fragments hold ``server`` blocks that the main file places inside ``http``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from hmacguard.audit.model import SourceFile

if TYPE_CHECKING:
    from hmacguard.audit.python.facts import Setting

__all__ = [
    "Directive",
    "NginxFile",
    "NginxParseError",
    "looks_like_nginx",
    "nginx_size",
    "parse_nginx",
    "proxy_limits",
]
#: nginx's client_max_body_size when a configuration does not set it.
NGINX_DEFAULT_BODY_LIMIT = 1024 * 1024
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_PASSES = frozenset({"proxy_pass", "uwsgi_pass", "fastcgi_pass", "grpc_pass"})

_BLOCKS = re.compile(r"^\s*(?:http|server|location|upstream|events)\b[^;{]*\{", re.MULTILINE)


class NginxParseError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    line: int
    #: The enclosing blocks, outermost first: ("http", "server", "location /webhook").
    context: tuple[str, ...]


@dataclass(frozen=True)
class NginxFile:
    source: SourceFile
    directives: tuple[Directive, ...]

    def named(self, name: str) -> Iterator[Directive]:
        return (d for d in self.directives if d.name == name)


def looks_like_nginx(path: PurePath, text: str) -> bool:
    name = path.name.lower()
    if name.endswith(".nginx") or (name.endswith(".conf") and "nginx" in str(path).lower()):
        return True
    if not name.endswith(".conf"):
        return False
    return "client_max_body_size" in text or _BLOCKS.search(text) is not None


def _flatten(block: list[dict[str, Any]], context: tuple[str, ...]) -> Iterator[Directive]:
    for item in block:
        args = tuple(str(a) for a in item.get("args", ()))
        yield Directive(str(item["directive"]), args, int(item.get("line") or 0), context)
        inner = item.get("block")
        if inner:
            label = " ".join((str(item["directive"]), *args))
            yield from _flatten(inner, (*context, label))


def parse_nginx(source: SourceFile) -> NginxFile:
    """Parse with crossplane; raise NginxParseError with crossplane's first error."""
    import crossplane

    payload = crossplane.parse(source.fs_path or source.path, single=True, catch_errors=True, check_ctx=False)
    config = payload.get("config") or []
    errors = [e for c in config for e in c.get("errors", [])] or payload.get("errors", [])
    if errors or not config:
        first = errors[0] if errors else {"error": "no configuration", "line": None}
        line = first.get("line")
        raise NginxParseError(
            str(first.get("error") or "does not parse"), int(line) if line is not None else None
        )
    return NginxFile(source, tuple(_flatten(config[0].get("parsed", []), ())))


def nginx_size(text: str) -> int | None:
    """nginx's size syntax (``512``, ``8k``, ``10m``, ``1g``) in bytes; None when malformed."""
    m = _SIZE.match(text.strip())
    if m is None:
        return None
    return int(m.group(1)) * _UNIT[m.group(2).lower()]


def proxy_limits(nginx: NginxFile) -> list[Setting]:
    """The body caps an nginx file puts in front of an application it proxies to.

    Only a file that passes requests on (``proxy_pass``, ``uwsgi_pass``...) is in front of the
    app; its caps are every ``client_max_body_size`` it sets, or nginx's 1 MiB default.
    """
    from hmacguard.audit.python.facts import Setting
    from hmacguard.audit.python.frontend import UNKNOWN

    if not any(d.name in _PASSES for d in nginx.directives):
        return []
    out: list[Setting] = []
    for directive in nginx.named("client_max_body_size"):
        size = nginx_size(directive.args[0]) if directive.args else None
        value = size if size is not None else UNKNOWN
        out.append(Setting("client_max_body_size", value, nginx.source.path, directive.line))
    if not out:
        out.append(Setting("client_max_body_size", NGINX_DEFAULT_BODY_LIMIT, nginx.source.path, 1))
    return out
