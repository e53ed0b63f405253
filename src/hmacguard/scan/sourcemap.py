"""``hmacguard scan --format sarif``: the scan's findings where GitHub code scanning can show them.

Code scanning shows an alert on a file of the repository, and refuses a location whose URI is a web
address. A scan finds flaws in an *endpoint*, so each endpoint is mapped to the source that serves
it, first match wins:

1. ``--source-map FILE``: lines of ``METHOD PATH = FILE[:LINE]``, ``#`` comments allowed::

       POST /webhook          = app/webhooks.py:42
       PUT  /hooks/{id}       = app/hooks.py:10      # {name} matches one path segment
       *    /stripe/*         = billing/stripe.py    # * as method: any; * in a path: anything

   or the same as JSON: ``{"POST /webhook": "app/webhooks.py:42", ...}``. Paths are relative to the
   repository root (``%SRCROOT%``, the directory hmacguard runs in) and written with ``/``.
2. for ``scan --openapi``, the operation's line in the spec file;
3. otherwise ``endpoints/<METHOD>/<path>`` under ``%SRCROOT%``: a stable placeholder GitHub accepts
   (the alert then has no code to show; the URL is in the result's logical location and properties).

Everything else comes from :mod:`hmacguard.report.sarif` (rule descriptors with ``security-severity``,
tags, help); results get :data:`~hmacguard.report.scan_diff.ENDPOINT_FINGERPRINT_KEY` fingerprints,
which do not depend on host or port, so alerts survive a service moving port between runs, and a scan
SARIF log works as a ``--baseline``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.findings import RULES, SCAN_RULE_IDS, Finding
from hmacguard.report.sarif import sarif_log
from hmacguard.report.scan_diff import ENDPOINT_FINGERPRINT_KEY, endpoint_fingerprints, endpoint_path
from hmacguard.scan.model import ScanReport
from hmacguard.scan.openapi import OpenApiScan

__all__ = ["SourceLocation", "SourceMap", "load_source_map", "render_scan_sarif", "scan_sarif_log"]

_SRCROOT = "%SRCROOT%"
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


def _placeholder(method: str, url: str) -> SourceLocation:
    path = endpoint_path(url).split("?", 1)[0].strip("/") or "root"
    safe = re.sub(r"[^A-Za-z0-9._/-]", "_", path)
    return SourceLocation(f"endpoints/{method.upper()}/{safe}", None, "placeholder")


def _location(finding: Finding, where: SourceLocation) -> dict[str, Any]:
    method = (finding.location.method or "POST").upper()
    url = finding.location.url or ""
    artifact = {"uri": where.path}
    if not where.path.startswith("file:"):
        artifact["uriBaseId"] = _SRCROOT
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if where.line is not None:
        physical["region"] = {"startLine": where.line}
    return {
        "physicalLocation": physical,
        "logicalLocations": [
            {
                "name": f"{method} {endpoint_path(url)}",
                "fullyQualifiedName": f"{method} {url}",
                "kind": "resource",
            }
        ],
        "message": {"text": f"{method} {url}"},
    }


def scan_sarif_log(
    report: ScanReport | OpenApiScan | Sequence[ScanReport],
    *,
    source_map: SourceMap | None = None,
    source_root: str | Path | None = None,
) -> dict[str, Any]:
    """The SARIF log as a dict (what :func:`render_scan_sarif` serialises)."""
    if isinstance(report, ScanReport):
        reports: list[ScanReport] = [report]
    elif isinstance(report, OpenApiScan):
        reports = list(report.reports)
        source_map = (source_map or SourceMap()) + SourceMap.from_openapi(report)
    else:
        reports = list(report)
    findings = [f for r in reports for f in r.findings]
    endpoints = [
        {
            "url": r.url,
            "method": r.method,
            "grade": r.grade,
            "score": r.score,
            "findings": len(r.findings),
            "untested": [u.what for u in r.untested],
        }
        for r in reports
    ]
    log = sarif_log("scan", findings, [RULES[r] for r in SCAN_RULE_IDS], properties={"endpoints": endpoints})
    run = log["runs"][0]
    mapped = source_map or SourceMap()
    for result, finding, fingerprint in zip(
        run["results"], findings, endpoint_fingerprints(findings), strict=True
    ):
        method, url = finding.location.method or "POST", finding.location.url or ""
        where = mapped.locate(method, url) or _placeholder(method, url)
        result["locations"] = [_location(finding, where)]
        result["partialFingerprints"] = {ENDPOINT_FINGERPRINT_KEY: fingerprint}
        result["properties"].update({"url": url, "method": method, "source": where.origin})
    root: dict[str, Any] = {
        "description": {"text": "The repository root: source-map and spec paths are relative to it."}
    }
    if source_root is not None:
        root["uri"] = Path(source_root).resolve().as_uri().rstrip("/") + "/"
    run["originalUriBaseIds"] = {_SRCROOT: root}
    return log


def render_scan_sarif(
    report: ScanReport | OpenApiScan | Sequence[ScanReport],
    *,
    source_map: SourceMap | str | Path | None = None,
    source_root: str | Path | None = None,
) -> str:
    """SARIF 2.1.0 of a scan; ``source_map`` is a :class:`SourceMap` or the path of a map file."""
    if source_map is not None and not isinstance(source_map, SourceMap):
        source_map = load_source_map(source_map)
    log = scan_sarif_log(report, source_map=source_map, source_root=source_root)
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
