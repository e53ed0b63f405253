"""Reports read back as baselines: ``--baseline FILE`` for every command.

A baseline is a JSON report (:mod:`hmacguard.report.json`) or a SARIF log (:mod:`hmacguard.report.sarif`)
written earlier by hmacguard; what it contributes is the fingerprints of its findings
(:func:`hmacguard.findings.fingerprints`). A report of another detector is refused, since its
findings could never match: a scan and an OpenAPI scan are one detector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.report.json import SCHEMA
from hmacguard.report.sarif import FINGERPRINT_KEY, analysis_of

__all__ = ["read_baseline"]


def read_baseline(text: str, *, kind: str) -> frozenset[str]:
    """The fingerprints of the findings in ``text`` (a JSON report or SARIF log) for a ``kind`` run."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"baseline is not JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        _same_detector(str(data.get("kind")), kind)
        return frozenset(str(f["fingerprint"]) for f in data.get("findings") or [] if "fingerprint" in f)
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        return _sarif_fingerprints(data["runs"], kind)
    raise ConfigurationError(f"baseline is neither an hmacguard {kind} report (JSON) nor its SARIF log")


def _same_detector(found: str, kind: str) -> None:
    if analysis_of(found) != analysis_of(kind):
        raise ConfigurationError(f"baseline is an hmacguard {found} report, not a {kind} report")


def _sarif_fingerprints(runs: list[Any], kind: str) -> frozenset[str]:
    found: set[str] = set()
    for run in runs:
        automation = run.get("automationDetails") if isinstance(run, Mapping) else None
        analysis = str((automation or {}).get("id", "")).strip("/").removeprefix("hmacguard/")
        if analysis and analysis != analysis_of(kind):
            raise ConfigurationError(f"baseline is the SARIF log of hmacguard {analysis}, not of {kind}")
        for result in run.get("results") or []:
            value = (result.get("partialFingerprints") or {}).get(FINGERPRINT_KEY)
            if value:
                found.add(str(value))
    return frozenset(found)
