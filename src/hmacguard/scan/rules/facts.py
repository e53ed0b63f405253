"""What a scan rule reads (:class:`ScanFacts`), the thresholds it judges by (:class:`Thresholds`), and
the helpers every rule module builds its finding with.

Each threshold's reason is written in the docstring of the rule that uses it (``hmacguard rules
--explain ID``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hmacguard.findings import Evidence, EvidenceValue, Finding, Location, Severity, get_rule
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.model import (
    BurstResult,
    EnforcementProbe,
    EnforcementResult,
    HeldResult,
    Measurement,
    RetentionResult,
    Stack,
    Variant,
    Verdict,
)
from hmacguard.scan.stack import stack_hint
from hmacguard.scan.summary import VariantSummary, summarize_all
from hmacguard.scan.wire import Exchange

__all__ = ["ScanFacts", "Thresholds", "enforcement_brief", "largest", "probe_brief", "scan_finding"]


@dataclass(frozen=True)
class Thresholds:
    #: unbounded-body, high-limit, content-type probes: "abnormally large".
    large_body: int = 10 * MiB
    #: content-type-bypass: how many times the size another type is refused at a type must be read.
    bypass_factor: float = 2.0
    #: memory-amplification: RSS growth per body byte, judged at bodies of at least the minimum size.
    amplification: float = 0.5
    amplification_min_size: int = 32 * MiB
    #: memory-retention: growth per request against the body size, and a floor in bytes.
    retention_ratio: float = 0.5
    retention_min_bytes: int = 16 * KiB
    #: memory-held-uploads: RSS growth per byte the held uploads sent after their first piece,
    #: judged when they sent at least the minimum.
    held_ratio: float = 0.5
    held_min_bytes: int = 8 * MiB
    #: degradation: burst latency (90th percentile) against the quiet median.
    latency_factor: float = 10.0
    latency_floor_s: float = 1.0


@dataclass(frozen=True)
class ScanFacts:
    """Everything the probes measured, as the rules see it."""

    url: str
    method: str
    primary: Variant
    measurements: Sequence[Measurement]
    side_exchanges: Sequence[Exchange]
    retention: RetentionResult | None
    burst: BurstResult | None
    unavailable_reason: str | None
    stack: Stack
    #: The enforcement phase's probes (None: the phase did not run).
    enforcement: EnforcementResult | None = None
    #: The held-uploads phase (None: it did not run).
    held: HeldResult | None = None

    def summaries(self) -> list[VariantSummary]:
        return summarize_all(self.measurements)


def scan_finding(
    rule: str,
    facts: ScanFacts,
    message: str,
    summary: str,
    values: dict[str, EvidenceValue],
    *,
    severity: Severity | None = None,
    confidence: str = "high",
) -> Finding:
    """A finding of ``rule`` at the scanned endpoint, with the catalogue's remediation and the
    identified stack's own hint."""
    catalogue = get_rule(rule)
    return Finding(
        rule=rule,
        severity=severity if severity is not None else catalogue.severity,
        message=message,
        location=Location(url=facts.url, method=facts.method),
        evidence=Evidence(summary, values),
        remediation=catalogue.remediation,
        stack=stack_hint(rule, facts.stack),
        confidence=confidence,
    )


def probe_brief(m: Measurement) -> dict[str, EvidenceValue]:
    """One probe as evidence: variant, size, verdict, status, outcome, time, bytes read first."""
    ex = m.exchange
    accepted = m.accepted_before_answer
    return {
        "variant": m.variant.label,
        "size": m.size,
        "verdict": m.verdict.value,
        "status": ex.status,
        "outcome": ex.outcome.value,
        "seconds": round(ex.total_s, 3),
        "read_before_answer_max": None if accepted is None else accepted[1],
    }


def enforcement_brief(p: EnforcementProbe) -> dict[str, EvidenceValue]:
    """One enforcement probe as evidence: what it was, where it went, what came back."""
    whole = p.to_dict()
    return {k: whole[k] for k in ("kind", "target", "spelling", "timestamp", "status", "outcome", "accepted")}


def largest(facts: ScanFacts, variant: Variant, verdict: Verdict) -> Measurement | None:
    """The largest probe of ``variant`` judged ``verdict``."""
    ms = [m for m in facts.measurements if m.variant == variant and m.verdict is verdict]
    return max(ms, key=lambda m: m.size, default=None)
