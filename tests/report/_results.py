"""A minimal result for renderer tests: any findings, under any kind."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from hmacguard.findings import EvidenceValue, Finding, fingerprints, severity_summary


@dataclass(frozen=True)
class Findings:
    kind: str
    findings: tuple[Finding, ...]
    rules: tuple[str, ...] = ()
    content: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, EvidenceValue]:
        return severity_summary(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.content)

    def without_baseline(self, known: Collection[str]) -> Findings:
        keys = fingerprints(self.findings)
        kept = tuple(f for f, k in zip(self.findings, keys, strict=True) if k not in known)
        return replace(self, findings=kept)
