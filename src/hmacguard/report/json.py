"""JSON reports: one versioned envelope for every detector, and baselines read back from it.

The envelope (``schema`` names it, ``version`` changes only on incompatible changes)::

    {
      "schema": "hmacguard-report",
      "version": 1,
      "kind": "audit",                      # or "scan", "leaks"
      "tool": {"name": "hmacguard", "version": "0.1.0"},
      "summary": {"findings": 3, "by_severity": {"critical": 0, "high": 2, ...}},
      "findings": [ {Finding.to_dict() + "fingerprint"}, ... ],
      ...extra                              # detector-specific keys, e.g. "diagnostics"
    }

A report is also a baseline: ``read_fingerprints`` returns the fingerprints of its findings (it
reads SARIF logs written by :mod:`hmacguard.report.sarif` as well).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.findings import Finding, Severity
from hmacguard.report import FINGERPRINT_KEY, fingerprints, tool_version

__all__ = ["SCHEMA", "SCHEMA_VERSION", "read_fingerprints", "render_json", "report_dict"]

SCHEMA = "hmacguard-report"
SCHEMA_VERSION = 1
_RESERVED = frozenset({"schema", "version", "kind", "tool", "summary", "findings"})


def report_dict(
    kind: str, findings: Sequence[Finding], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope as a dict (what :func:`render_json` serialises)."""
    extra = dict(extra or {})
    clash = _RESERVED & extra.keys()
    if clash:
        raise ConfigurationError(f"extra keys {sorted(clash)} are reserved by the JSON envelope")
    items = []
    for finding, fingerprint in zip(findings, fingerprints(findings), strict=False):
        item = finding.to_dict()
        item["fingerprint"] = fingerprint
        items.append(item)
    by_severity = {s.label: sum(1 for f in findings if f.severity is s) for s in reversed(Severity)}
    summary: dict[str, Any] = {"findings": len(findings), "by_severity": by_severity}
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "kind": kind,
        "tool": {"name": "hmacguard", "version": tool_version()},
        "summary": summary,
        "findings": items,
    }
    out.update(extra)
    return out


def render_json(kind: str, findings: Sequence[Finding], extra: Mapping[str, Any] | None = None) -> str:
    """The versioned JSON report of ``findings`` from detector ``kind``, ``extra`` merged in."""
    return json.dumps(report_dict(kind, findings, extra), indent=2, ensure_ascii=False) + "\n"


def read_fingerprints(text: str) -> frozenset[str]:
    """The fingerprints of a JSON report or SARIF log written by hmacguard (a baseline)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"baseline is not JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        return frozenset(str(f["fingerprint"]) for f in data.get("findings", []) if "fingerprint" in f)
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        found = set()
        for run in data["runs"]:
            for result in run.get("results", []):
                value = result.get("partialFingerprints", {}).get(FINGERPRINT_KEY)
                if value:
                    found.add(str(value))
        return frozenset(found)
    raise ConfigurationError("baseline is neither an hmacguard JSON report nor a SARIF log")
