"""``hmacguard scan --format json``: the report as versioned JSON, and the JSON Schema it follows.

The document is the envelope every hmacguard detector shares (:mod:`hmacguard.report.json`:
``schema``, ``version``, ``kind: "scan"``, ``tool``, ``summary``, ``findings`` with fingerprints)
carrying the rest of :meth:`ScanReport.to_dict` beside it. Its shape is :data:`SCAN_REPORT_SCHEMA`
(JSON Schema 2020-12), reproduced in docs/scan.md and checked against real scans in the tests.
``version`` is the envelope's; ``schema_version`` the scan content's, whose major number changes on
any incompatible change.
"""

from __future__ import annotations

import json
from typing import Any

from hmacguard.report.json import report_dict
from hmacguard.scan import ScanReport

__all__ = ["SCAN_REPORT_SCHEMA", "render_json", "to_json_document"]

_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}

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
                    "rule": {"enum": [
                        "unbounded-body", "high-limit", "chunked-bypass", "content-type-bypass",
                        "late-rejection", "memory-amplification", "memory-retention", "no-rate-limit",
                        "degradation", "target-unavailable",
                    ]},
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
                    "outcome": {"enum": ["response", "reset", "closed", "timeout", "protocol-error",
                                         "connect-failed"]},
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


def to_json_document(report: ScanReport) -> dict[str, Any]:
    rest = {k: v for k, v in report.to_dict().items() if k != "findings"}
    return report_dict("scan", report.findings, rest)


def render_json(report: ScanReport) -> str:
    return json.dumps(to_json_document(report), indent=2) + "\n"
