"""``--format sarif``: SARIF 2.1.0 logs for GitHub code scanning (and any SARIF viewer), of any result.

``render_sarif(result)`` writes one run:

- ``tool.driver.rules``: one ``reportingDescriptor`` per rule, with ``shortDescription`` (title),
  ``fullDescription`` and ``help`` (the rule's documentation and remediation), a default ``level``,
  and ``properties``: ``security-severity`` (the CVSS-like score GitHub sorts alerts by), ``tags``
  (``security``, the category, ``external/cwe/cwe-N``) and ``precision``.
- ``results``: ``ruleId``/``ruleIndex``, ``level``, ``message``, a ``physicalLocation``
  (``artifactLocation`` relative to ``%SRCROOT%`` plus a ``region`` with line, column and snippet)
  for source findings; for endpoint findings the source that serves the endpoint
  (:mod:`hmacguard.scan.sourcemap`: ``--source-map``, the OpenAPI spec's line, else a stable
  ``endpoints/<METHOD>/<path>`` placeholder) with the URL as a logical location; and
  ``partialFingerprints`` under our own key (GitHub reserves ``primaryLocationLineHash`` and computes
  it itself), the fingerprints every baseline shares. Suppressed findings are included with
  ``suppressions: [{"kind": "inSource"}]``, as the specification intends.
- ``invocations``: whether the run succeeded, and notifications (files that did not parse, rules
  that crashed) as ``toolExecutionNotifications``.
- ``automationDetails.id``: ``hmacguard/<detector>/``, so that the audit's and the scanner's
  uploads are separate analyses (an OpenAPI scan is the scanner's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, cast

from hmacguard.findings import RULES, Finding, Result, Rule, Severity, endpoint_path, fingerprints
from hmacguard.report.version import tool_version
from hmacguard.scan.openapi import OpenApiScan
from hmacguard.scan.sourcemap import SourceLocation, SourceMap, load_source_map, placeholder

__all__ = [
    "FINGERPRINT_KEY",
    "SARIF_SCHEMA_URI",
    "Notice",
    "analysis_of",
    "render_sarif",
    "sarif_log",
    "security_severity",
]

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
#: The ``partialFingerprints`` key: :func:`hmacguard.findings.fingerprints`, version 1.
FINGERPRINT_KEY = "hmacguard/v1"
_SRCROOT = "%SRCROOT%"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub buckets security-severity: > 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


class Notice(Protocol):
    """Anything describing a condition of the run itself (e.g. the audit's Diagnostic)."""

    @property
    def message(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def line(self) -> int | None: ...
    @property
    def level(self) -> str: ...


def security_severity(severity: Severity) -> str:
    """The ``security-severity`` score GitHub reads for a rule of this severity."""
    return _SCORE[severity]


def _uri(path: str) -> tuple[str, str | None]:
    """(uri, uriBaseId): relative paths are relative to the source root, absolute ones are files."""
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return posix.as_uri(), None
    return posix.as_posix(), _SRCROOT


def _descriptor(rule: Rule) -> dict[str, Any]:
    doc = rule.doc or rule.title
    help_text = f"{doc}\n\nRemediation: {rule.remediation}"
    tags = ["security", rule.category.value, *(f"external/cwe/cwe-{c}" for c in rule.cwe)]
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": doc.split("\n\n", 1)[0].replace("\n", " ")},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "security-severity": security_severity(rule.severity),
            "tags": tags,
            "precision": "high",
            "problem.severity": {"error": "error", "warning": "warning"}.get(
                _LEVEL[rule.severity], "recommendation"
            ),
            "source": rule.source,
            "owasp": rule.owasp,
        },
    }


def analysis_of(kind: str) -> str:
    """The code-scanning analysis a result kind uploads to: the detector's name."""
    return "scan" if kind == "openapi-scan" else kind


def _endpoint_location(finding: Finding, where: SourceLocation) -> dict[str, Any]:
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


def _location(finding: Finding) -> dict[str, Any]:
    loc = finding.location
    if loc.path is not None:
        uri, base = _uri(loc.path)
        artifact: dict[str, Any] = {"uri": uri}
        if base is not None:
            artifact["uriBaseId"] = base
        physical: dict[str, Any] = {"artifactLocation": artifact}
        if loc.line is not None:
            region: dict[str, Any] = {"startLine": max(1, loc.line)}
            if loc.column is not None:
                region["startColumn"] = max(1, loc.column)
            if loc.end_line is not None and loc.end_line >= loc.line:
                region["endLine"] = loc.end_line
            if loc.snippet:
                region["snippet"] = {"text": loc.snippet}
            physical["region"] = region
        return {"physicalLocation": physical}
    where = f"{loc.method or 'POST'} {loc.url}" if loc.url else "endpoint"
    out: dict[str, Any] = {
        "logicalLocations": [{"name": where, "kind": "resource"}],
        "message": {"text": where},
    }
    if loc.url:
        out["physicalLocation"] = {"artifactLocation": {"uri": loc.url}}
    return out


def _result(
    finding: Finding, index: int, fingerprint: str, suppressed: bool, sources: SourceMap
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.message} Fix: {finding.remediation}"},
        "locations": [_location(finding)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": {
            "severity": finding.severity.label,
            "category": finding.category.value,
            "confidence": finding.confidence,
            "evidence": dict(finding.evidence.values),
            **({"stack": finding.stack} if finding.stack else {}),
        },
    }
    loc = finding.location
    if loc.path is None and loc.url is not None:
        # Code scanning refuses a web address as a location: point at the code serving the endpoint.
        method = (loc.method or "POST").upper()
        where = sources.locate(method, loc.url) or placeholder(method, loc.url)
        result["locations"] = [_endpoint_location(finding, where)]
        result["properties"].update({"url": loc.url, "method": method, "source": where.origin})
    if suppressed:
        result["suppressions"] = [{"kind": "inSource", "status": "accepted"}]
    return result


def _notification(notice: Notice) -> dict[str, Any]:
    out: dict[str, Any] = {"message": {"text": notice.message}, "level": notice.level}
    if notice.path:
        uri, base = _uri(notice.path)
        artifact: dict[str, Any] = {"uri": uri}
        if base is not None:
            artifact["uriBaseId"] = base
        physical: dict[str, Any] = {"artifactLocation": artifact}
        if notice.line:
            physical["region"] = {"startLine": max(1, notice.line)}
        out["locations"] = [{"physicalLocation": physical}]
    return out


def _sources(result: Result, source_map: SourceMap | str | Path | None) -> SourceMap:
    sources = source_map if isinstance(source_map, SourceMap) else SourceMap()
    if source_map is not None and not isinstance(source_map, SourceMap):
        sources = load_source_map(source_map)
    if result.kind == "openapi-scan":
        sources = sources + SourceMap.from_openapi(cast(OpenApiScan, result))
    return sources


def sarif_log(
    result: Result,
    *,
    source_map: SourceMap | str | Path | None = None,
    source_root: str | Path | None = None,
) -> dict[str, Any]:
    """The SARIF log of ``result`` as a dict (what :func:`render_sarif` serialises).

    Its rules are every rule the run checked (so that a clean run still documents them) plus any rule
    a finding uses; inline-suppressed findings and the run's diagnostics come from the result's
    ``suppressed`` and ``diagnostics`` when it has them (the audit does).
    """
    findings = list(result.findings)
    suppressed: Sequence[Finding] = getattr(result, "suppressed", ())
    notifications: Sequence[Notice] = getattr(result, "diagnostics", ())
    catalogue = [RULES[r] for r in result.rules]
    ids = {r.id for r in catalogue}
    for finding in (*findings, *suppressed):
        if finding.rule not in ids:  # every result's rule must be described
            catalogue.append(RULES[finding.rule])
            ids.add(finding.rule)
    index = {rule.id: i for i, rule in enumerate(catalogue)}
    everything = [*findings, *suppressed]
    sources = _sources(result, source_map)
    results = [
        _result(f, index[f.rule], fp, i >= len(findings), sources)
        for i, (f, fp) in enumerate(zip(everything, fingerprints(everything), strict=True))
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": not any(n.level == "error" for n in notifications),
        "toolExecutionNotifications": [_notification(n) for n in notifications],
    }
    root: dict[str, Any] = {"description": {"text": "The repository root: source paths are relative to it."}}
    if source_root is not None:
        root["uri"] = Path(source_root).resolve().as_uri().rstrip("/") + "/"
    analysis = analysis_of(result.kind)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "hmacguard",
                "fullName": f"hmacguard {analysis}",
                "version": tool_version(),
                "semanticVersion": tool_version(),
                "rules": [_descriptor(r) for r in catalogue],
            }
        },
        "automationDetails": {"id": f"hmacguard/{analysis}/"},
        "originalUriBaseIds": {_SRCROOT: root},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": results,
        "properties": result.summary(),
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(
    result: Result,
    *,
    source_map: SourceMap | str | Path | None = None,
    source_root: str | Path | None = None,
) -> str:
    """SARIF 2.1.0 of ``result``; ``source_map`` maps endpoints to code (a SourceMap or a map file)."""
    log = sarif_log(result, source_map=source_map, source_root=source_root)
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
