"""Where an endpoint's code lives: ``hmacguard scan --source-map FILE`` and the OpenAPI spec's lines.

Code scanning shows an alert on a file of the repository, and refuses a location whose URI is a web
address. A scan finds flaws in an *endpoint*, so each endpoint is mapped to the source that serves
it, first match wins:

1. ``--source-map FILE``: lines of ``METHOD PATH = FILE[:LINE]``, ``#`` comments allowed::

       POST /webhook          = app/webhooks.py:42
       PUT  /hooks/{id}       = app/hooks.py:10      # {name} matches one path segment
       *    /stripe/*         = billing/stripe.py    # * as method: any; * in a path: anything

   or the same as JSON: ``{"POST /webhook": "app/webhooks.py:42", ...}``. Paths are relative to the
   repository root (``%SRCROOT%``, the directory hmacguard runs in) and written with ``/``.
2. for ``scan --openapi``, the operation's line in the spec file (:meth:`SourceMap.from_openapi`);
3. otherwise :func:`placeholder`: ``endpoints/<METHOD>/<path>`` under ``%SRCROOT%``, a stable location
   GitHub accepts (the alert then has no code to show; the URL stays in the result's logical location).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hmacguard.errors import ConfigurationError
from hmacguard.findings import endpoint_path
from hmacguard.scan.openapi import OpenApiScan

__all__ = ["SourceLocation", "SourceMap", "load_source_map", "placeholder"]

_LINE = re.compile(r"^(?P<method>\S+)\s+(?P<path>[^\s=]+)\s*=\s*(?P<target>\S.*?)\s*$")
_METHOD = re.compile(r"^(\*|[A-Za-z]+)$")


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int | None = None
    #: Where the mapping came from: ``source-map``, ``openapi`` or ``placeholder``.
    origin: str = "source-map"


@dataclass(frozen=True)
class _Entry:
    method: str
    pattern: re.Pattern[str]
    where: SourceLocation


def _path_pattern(path: str) -> re.Pattern[str]:
    if path == "*":
        return re.compile(r".*")
    parts = re.split(r"(\{[^/{}]+\}|\*)", path)
    regex = "".join("[^/]+" if p.startswith("{") else ".*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(regex + r"/?")


def _target(text: str, origin: str) -> SourceLocation:
    path, sep, line = text.strip().rpartition(":")
    if sep and line.isdigit() and path:
        if int(line) < 1:
            raise ConfigurationError(f"{origin}: line numbers start at 1, not {line}")
        return SourceLocation(path.replace("\\", "/"), int(line))
    if not text.strip():
        raise ConfigurationError(f"{origin}: empty file name")
    return SourceLocation(text.strip().replace("\\", "/"))


def _entry(method: str, path: str, target: str, origin: str) -> _Entry:
    if not _METHOD.match(method):
        raise ConfigurationError(f"{origin}: not an HTTP method: {method!r}")
    if path != "*" and not path.startswith("/"):
        raise ConfigurationError(f"{origin}: the path must start with / (or be *), not {path!r}")
    return _Entry(method.upper(), _path_pattern(path), _target(target, origin))


class SourceMap:
    """Endpoints to source locations; :meth:`locate` returns the first entry that matches."""

    def __init__(self, entries: Iterable[_Entry] = (), origin: str = "source map") -> None:
        self.entries = tuple(entries)
        self.origin = origin

    @classmethod
    def parse(cls, text: str, origin: str = "source map") -> SourceMap:
        """Read the line format or its JSON twin (told apart by the first character)."""
        if text.lstrip().startswith(("{", "[")):
            return cls._parse_json(text, origin)
        entries = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _LINE.match(line)
            if m is None:
                raise ConfigurationError(
                    f"{origin}:{number}: expected 'METHOD PATH = FILE[:LINE]', got {raw.strip()!r}"
                )
            entries.append(_entry(m["method"], m["path"], m["target"], f"{origin}:{number}"))
        return cls(entries, origin)

    @classmethod
    def _parse_json(cls, text: str, origin: str) -> SourceMap:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{origin}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f'{origin}: expected an object like {{"POST /webhook": "app.py:12"}}')
        entries = []
        for key, target in data.items():
            method, _, path = str(key).strip().partition(" ")
            if not isinstance(target, str) or not path.strip():
                raise ConfigurationError(
                    f'{origin}: entry {key!r} must look like "METHOD PATH": "FILE[:LINE]"'
                )
            entries.append(_entry(method, path.strip(), target, f"{origin}: {key}"))
        return cls(entries, origin)

    @classmethod
    def from_openapi(cls, scan: OpenApiScan) -> SourceMap:
        """Each scanned operation at its line in the spec file (when the spec was read from one)."""
        if scan.spec.path is None:
            return cls((), "openapi")
        spec_path = Path(scan.spec.path)
        shown = spec_path.as_posix()
        if spec_path.is_absolute():
            try:
                shown = spec_path.relative_to(Path.cwd()).as_posix()
            except ValueError:
                shown = spec_path.as_uri()  # outside the repository: an absolute file URI
        entries = [
            _Entry(
                op.method,
                re.compile(re.escape(endpoint_path(report.url).split("?")[0])),
                SourceLocation(shown, op.line, "openapi"),
            )
            for op, report in zip(scan.operations, scan.reports, strict=True)
        ]
        return cls(entries, "openapi")

    def locate(self, method: str, url: str) -> SourceLocation | None:
        path = endpoint_path(url).split("?", 1)[0]
        for entry in self.entries:
            if entry.method in ("*", method.upper()) and entry.pattern.fullmatch(path):
                return entry.where
        return None

    def __add__(self, other: SourceMap) -> SourceMap:
        return SourceMap((*self.entries, *other.entries), f"{self.origin} + {other.origin}")


def load_source_map(path: str | Path) -> SourceMap:
    """``--source-map FILE``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    return SourceMap.parse(text, str(path))


def placeholder(method: str, url: str) -> SourceLocation:
    """The stable stand-in location of an endpoint no map names."""
    path = endpoint_path(url).split("?", 1)[0].strip("/") or "root"
    safe = re.sub(r"[^A-Za-z0-9._/-]", "_", path)
    return SourceLocation(f"endpoints/{method.upper()}/{safe}", None, "placeholder")
