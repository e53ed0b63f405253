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
from typing import Any

from hmacguard.audit.model import SourceFile

__all__ = ["Directive", "NginxFile", "NginxParseError", "looks_like_nginx", "parse_nginx"]

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
