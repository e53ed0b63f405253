"""``--format json``: one versioned envelope for every kind of result.

The envelope (``schema`` names it, ``version`` changes only on incompatible changes)::

    {
      "schema": "hmacguard-report",
      "version": 1,
      "kind": "scan",                       # or "openapi-scan", "audit", "leaks"
      "tool": {"name": "hmacguard", "version": "0.1.0"},
      "summary": {"findings": 3, "by_severity": {"critical": 0, "high": 2, ...}, ...},
      "findings": [ {Finding.to_dict() + "fingerprint"}, ... ],
      ...                                   # the result's own content (its to_dict()), e.g. "diagnostics"
    }

Any result satisfying :class:`hmacguard.findings.Result` renders here; ``fingerprint`` is
:func:`hmacguard.findings.fingerprints`, so a report is also a baseline (:mod:`hmacguard.report.baseline`).
A scan's document follows :data:`SCAN_REPORT_SCHEMA` (JSON Schema 2020-12), reproduced in docs/scan.md
and checked against real scans in the tests; ``version`` is the envelope's, ``schema_version`` the scan
content's, whose major number changes on any incompatible change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hmacguard.findings import Result, Rule, fingerprints
from hmacguard.guard import preflight
from hmacguard.guard.preflight import StoreCheck
from hmacguard.lab.targets import Target
from hmacguard.report.version import tool_version
from hmacguard.scan.diff import ScanDiff
from hmacguard.scan.history import HistoryEntry
from hmacguard.scan.rules import SCAN_RULE_IDS

__all__ = [
    "ENVELOPE_KEYS",
    "SCAN_REPORT_SCHEMA",
    "SCHEMA",
    "SCHEMA_VERSION",
    "diff_json",
    "envelope",
    "history_json",
    "render_json",
    "rules_json",
    "targets_json",
]

SCHEMA = "hmacguard-report"
SCHEMA_VERSION = 1
#: The keys the envelope owns; a result's own content never overrides them.
ENVELOPE_KEYS = frozenset({"schema", "version", "kind", "tool", "summary", "findings"})


def envelope(result: Result) -> dict[str, Any]:
    """The JSON document of ``result`` as a dict (what :func:`render_json` serialises)."""
    findings = list(result.findings)
    items = []
    for finding, fingerprint in zip(findings, fingerprints(findings), strict=True):
        item = finding.to_dict()
        item["fingerprint"] = fingerprint
        items.append(item)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "kind": result.kind,
        "tool": {"name": "hmacguard", "version": tool_version()},
        "summary": result.summary(),
        "findings": items,
    }
    out.update((k, v) for k, v in result.to_dict().items() if k not in ENVELOPE_KEYS)
    return out


def render_json(result: Result) -> str:
    """The versioned JSON report of ``result``."""
    return json.dumps(envelope(result), indent=2, ensure_ascii=False) + "\n"


def rules_json(rules: Sequence[Rule]) -> str:
    """``hmacguard rules --format json``: the catalogue, one object per rule."""
    data = [
        {
            "id": r.id,
            "source": r.source,
            "title": r.title,
            "severity": r.severity.label,
            "category": r.category.value,
            "cwe": [f"CWE-{c}" for c in r.cwe],
            "owasp": r.owasp,
            "remediation": r.remediation,
            "doc": r.doc,
        }
        for r in rules
    ]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def history_json(entries: Sequence[HistoryEntry], path: str) -> str:
    """``hmacguard history --format json``."""
    return json.dumps({"history": path, "scans": [e.to_dict() for e in entries]}, indent=2) + "\n"


def diff_json(diff: ScanDiff) -> str:
    """``hmacguard diff --format json``."""
    return json.dumps(diff.to_dict(), indent=2, ensure_ascii=False) + "\n"


def targets_json(targets: Iterable[Target]) -> str:
    """``hmacguard lab list --format json``: every lab target, whole."""
    data = [
        {
            "name": t.name,
            "framework": t.framework,
            "server": t.server.value,
            "vulnerable": t.vulnerable,
            "flaw": t.flaw,
            "expected": t.expected,
            "scan_findings": {
                "without_secret": list(t.scan_findings),
                "with_secret": list(t.scan_findings_signed),
            },
        }
        for t in targets
    ]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}
_OUTCOMES = {"enum": ["response", "reset", "closed", "timeout", "protocol-error", "connect-failed"]}

SCAN_REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://hmacguard.invalid/schemas/scan-report-1.json",
    "title": "hmacguard scan report",
    "type": "object",
    "required": [
        "schema", "version", "kind", "tool", "summary", "schema_version", "target", "score", "grade",
        "findings", "measurements", "limits", "untested", "notes", "traffic", "stack", "unavailable",
    ],
    "properties": {
        "schema": {"const": "hmacguard-report"},
        "version": {"const": 1},
        "kind": {"const": "scan"},
        "tool": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"const": "hmacguard"}, "version": {"type": "string"}},
        },
        "summary": {
            "type": "object",
            "required": ["findings", "by_severity"],
            "properties": {"findings": {"type": "integer"}, "by_severity": {"type": "object"}},
        },
        "schema_version": {"type": "string", "pattern": "^1\\.[0-9]+$"},
        "target": {
            "type": "object",
            "required": ["url", "method", "scheme", "signed"],
            "properties": {
                "url": {"type": "string"},
                "method": {"enum": ["POST", "PUT", "PATCH"]},
                "scheme": {"type": "string"},
                "signed": {"type": "boolean"},
            },
        },
        "started_at": {"type": "string"},
        "duration_s": {"type": "number", "minimum": 0},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "grade": {"enum": ["A", "B", "C", "D", "F"]},
        "unavailable": {"type": "boolean"},
        "memory_source": _NULLABLE_STR,
        "stack": {
            "type": "object",
            "required": ["framework", "server", "clues"],
            "properties": {
                "framework": _NULLABLE_STR,
                "server": _NULLABLE_STR,
                "clues": {"type": "array", "items": {"type": "string"}},
            },
        },
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["rule", "severity", "category", "cwe", "owasp", "message", "evidence",
                             "remediation", "location"],
                "properties": {
                    "rule": {"enum": list(SCAN_RULE_IDS)},
                    "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
                    "category": {"type": "string"},
                    "cwe": {"type": "array", "items": {"type": "string", "pattern": "^CWE-[0-9]+$"}},
                    "owasp": {"type": "string"},
                    "message": {"type": "string"},
                    "evidence": {
                        "type": "object",
                        "required": ["summary", "values"],
                        "properties": {"summary": {"type": "string"}, "values": {"type": "object"}},
                    },
                    "remediation": {"type": "string"},
                    "stack": _NULLABLE_STR,
                    "location": {"type": "object"},
                    "fingerprint": {"type": "string"},
                },
            },
        },
        "limits": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["variant", "largest_accepted", "smallest_refused", "refusal", "precise"],
                "properties": {
                    "variant": {"type": "string"},
                    "largest_accepted": _NULLABLE_INT,
                    "smallest_refused": _NULLABLE_INT,
                    "refusal": {"enum": ["status", "early", "cut", None]},
                    "precise": {"type": "boolean"},
                    "bisection_probes": {"type": "integer"},
                },
            },
        },
        "retention": {"type": ["object", "null"]},
        "burst": {"type": ["object", "null"]},
        "held_uploads": {
            "type": ["object", "null"],
            "required": ["variant", "declared_size", "opened", "held", "held_bytes", "first_bytes",
                         "answered", "rss_before", "rss_first", "rss_held", "rss_peak", "rss_growth",
                         "seconds"],
            "properties": {
                "variant": {"type": "string"},
                "declared_size": {"type": "integer", "minimum": 1},
                "opened": {"type": "integer", "minimum": 0},
                "held": {"type": "integer", "minimum": 0},
                "held_bytes": {"type": "integer", "minimum": 0},
                "first_bytes": {"type": "integer", "minimum": 0},
                "answered": {"type": "object", "additionalProperties": {"type": "integer"}},
                "rss_before": {"type": "integer"},
                "rss_first": {"type": "integer"},
                "rss_held": {"type": "integer"},
                "rss_peak": _NULLABLE_INT,
                "rss_growth": {"type": "integer"},
                "seconds": {"type": "number", "minimum": 0},
                "late_bytes": _NULLABLE_INT,
                "rss_late": _NULLABLE_INT,
                "sources": {"type": "integer", "minimum": 1},
            },
        },
        "enforcement": {
            "type": ["object", "null"],
            "required": ["content_type", "body", "body_bytes", "signed", "timestamped", "probes"],
            "properties": {
                "content_type": {"type": "string"},
                "body": {"enum": ["test-event", "file"]},
                "body_bytes": {"type": "integer", "minimum": 1},
                "signed": {"type": "boolean"},
                "timestamped": {"type": "boolean"},
                "probes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kind", "target", "accepted", "outcome", "status"],
                        "properties": {
                            "kind": {"enum": ["unsigned", "forged", "sibling", "spelling", "signed",
                                              "replay", "replay-respelled", "stale-past",
                                              "stale-future"]},
                            "target": {"type": "string"},
                            "spelling": _NULLABLE_STR,
                            "timestamp": _NULLABLE_INT,
                            "accepted": {"type": "boolean"},
                            "outcome": _OUTCOMES,
                            "status": _NULLABLE_INT,
                            "reason": _NULLABLE_STR,
                            "total_s": {"type": "number", "minimum": 0},
                            "error": _NULLABLE_STR,
                        },
                    },
                },
            },
        },
        "measurements": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["phase", "variant", "size", "wire_size", "verdict", "outcome", "status",
                             "body_sent", "body_complete", "sent_at_response", "uncertainty",
                             "total_s", "rss_before", "rss_peak"],
                "properties": {
                    "phase": {"type": "string"},
                    "variant": {
                        "type": "object",
                        "required": ["label", "framing", "content_type", "content_encoding",
                                     "expect_continue"],
                    },
                    "size": {"type": "integer", "minimum": 0},
                    "wire_size": {"type": "integer", "minimum": 0},
                    "verdict": {"enum": ["accepted", "refused", "no-answer", "error", "throttled",
                                         "unreachable"]},
                    "refusal": {"enum": ["status", "early", "cut", None]},
                    "outcome": _OUTCOMES,
                    "status": _NULLABLE_INT,
                    "body_sent": {"type": "integer", "minimum": 0},
                    "body_complete": {"type": "boolean"},
                    "sent_at_response": _NULLABLE_INT,
                    "uncertainty": {"type": "integer", "minimum": 0},
                    "total_s": {"type": "number", "minimum": 0},
                    "rss_before": _NULLABLE_INT,
                    "rss_peak": _NULLABLE_INT,
                },
            },
        },
        "untested": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["what", "reason"],
                "properties": {"what": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "notes": {"type": "array", "items": {"type": "string"}},
        "traffic": {
            "type": "object",
            "required": ["bytes_sent", "requests"],
            "properties": {
                "bytes_sent": {"type": "integer", "minimum": 0},
                "requests": {"type": "integer", "minimum": 0},
            },
        },
        "budget": {"type": "object"},
    },
}  # fmt: skip


def store_check_json(check: StoreCheck | None, error: str | None = None) -> str:
    """``hmacguard store check --format json``: the check (docs/guide.md gives the schema), or for
    an unusable Redis ``{"status": "unusable", "error": ...}`` with the same kind and schema."""
    if check is not None:
        data = {**check.to_dict(), "tool_version": tool_version()}
    else:
        data = {
            "kind": "store-check",
            "schema": preflight.SCHEMA_VERSION,
            "status": "unusable",
            "error": error,
        }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
