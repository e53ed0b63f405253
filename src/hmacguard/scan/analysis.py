"""From measurements to findings: one check per rule id of the scanner's catalogue.

Each check reads the measurements (through the per-variant summaries) and returns a finding or
None. A check that crashes becomes a diagnostic in the report, never a crashed scan.

Thresholds (:class:`Thresholds`) and why:

- ``large_body`` 10 MiB: the seed's "abnormally large (over about 10 MB)"; webhook payloads are
  kilobytes (GitHub caps deliveries at 25 MB, Stripe's events are far smaller). A primary variant that
  accepted a body this large and refused none is ``unbounded-body``; one that refuses, but only above
  this, is ``high-limit``.
- ``amplification`` 0.5: peak RSS growth per body byte, at the largest accepted body of at least
  ``amplification_min_size`` (32 MiB). Smaller bodies cannot tell: a gunicorn worker's first request
  grows it by up to 16 MiB whatever the size, and Node frees streamed chunks only when its garbage
  collector runs (a 16 MiB body streamed through Express grew RSS by 16 MiB, a 100 MiB one by 4 MiB).
  A server that streams grows by its chunk size, far below half the body.
- ``retention_ratio`` 0.5: growth per request of at least half the body (and at least
  ``retention_min_bytes``, 16 KiB), fitted over all rounds, with the second half of the rounds and the
  median round still growing at half that rate. The lab's leaks keep 0.98–1.2 body per request; Node's
  garbage collector alone swings RSS by up to 0.3 body per request over the same window.
- ``latency_factor`` 10 and ``latency_floor_s`` 1: burst latency (90th percentile) more than ten times
  the quiet median and more than a second above it. Four concurrent requests on two workers double
  latency by queueing alone; ten times is the service struggling.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hmacguard._stats import slope
from hmacguard.findings import Evidence, EvidenceValue, Finding, Location, Severity, get_rule
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.fingerprint import stack_hint
from hmacguard.scan.model import (
    BurstResult,
    Measurement,
    Refusal,
    RetentionResult,
    Stack,
    Variant,
    Verdict,
)
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.probes.ratelimit import rate_limit_headers
from hmacguard.scan.summary import VariantSummary, summarize, summarize_all
from hmacguard.scan.wire import Exchange, Framing

__all__ = ["ScanFacts", "Thresholds", "analyse"]


@dataclass(frozen=True)
class Thresholds:
    large_body: int = 10 * MiB
    amplification: float = 0.5
    amplification_min_size: int = 32 * MiB
    retention_ratio: float = 0.5
    retention_min_bytes: int = 16 * KiB
    latency_factor: float = 10.0
    latency_floor_s: float = 1.0


@dataclass(frozen=True)
class ScanFacts:
    url: str
    method: str
    primary: Variant
    measurements: Sequence[Measurement]
    side_exchanges: Sequence[Exchange]
    retention: RetentionResult | None
    burst: BurstResult | None
    unavailable_reason: str | None
    stack: Stack

    def summaries(self) -> list[VariantSummary]:
        return summarize_all(self.measurements)


def _finding(
    rule: str,
    facts: ScanFacts,
    message: str,
    summary: str,
    values: dict[str, EvidenceValue],
    *,
    severity: Severity | None = None,
    confidence: str = "high",
) -> Finding:
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


def _probe_brief(m: Measurement) -> dict[str, EvidenceValue]:
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


def _largest(facts: ScanFacts, variant: Variant, verdict: Verdict) -> Measurement | None:
    ms = [m for m in facts.measurements if m.variant == variant and m.verdict is verdict]
    return max(ms, key=lambda m: m.size, default=None)


# -- size rules -----------------------------------------------------------------------------------


def check_unbounded(facts: ScanFacts, th: Thresholds) -> Finding | None:
    s = summarize(facts.measurements, facts.primary)
    if s.bounded or s.accepted is None or s.accepted < th.large_body:
        return None
    top = _largest(facts, facts.primary, Verdict.ACCEPTED)
    if top is None:
        return None
    also = [
        o.variant.label for o in facts.summaries()
        if o.variant != facts.primary and not o.bounded and (o.accepted or 0) >= th.large_body
    ]  # fmt: skip
    return _finding(
        "unbounded-body", facts,
        f"accepted a {size_text(s.accepted)} body ({facts.primary.label}) and refused no size it was sent",
        f"read {size_text(s.accepted)} whole and answered {top.exchange.status} after "
        f"{top.exchange.total_s:.2f}s; no 413 at any size",
        {"largest_accepted": s.accepted, "variant": facts.primary.label, "status": top.exchange.status,
         "seconds": round(top.exchange.total_s, 3), "threshold": th.large_body,
         "also_unbounded": list(also), "probe": _probe_brief(top)},
    )  # fmt: skip


def check_high_limit(facts: ScanFacts, th: Thresholds) -> Finding | None:
    s = summarize(facts.measurements, facts.primary)
    low = s.not_refused
    if not s.limits_size or s.refused is None or low is None or low < th.large_body:
        return None
    return _finding(
        "high-limit", facts,
        f"the body limit is between {size_text(low)} and {size_text(s.refused)} ({facts.primary.label})",
        f"accepted {size_text(low)}, refused {size_text(s.refused)}"
        f" ({s.refusal.value if s.refusal else 'unknown'})",
        {"largest_accepted": low, "smallest_refused": s.refused, "threshold": th.large_body,
         "variant": facts.primary.label},
    )  # fmt: skip


def check_chunked_bypass(facts: ScanFacts, th: Thresholds) -> Finding | None:
    best: tuple[int, VariantSummary, VariantSummary] | None = None
    for ch in facts.summaries():
        if ch.variant.framing is not Framing.CHUNKED or ch.accepted is None:
            continue
        cl = summarize(facts.measurements, Variant(Framing.CONTENT_LENGTH, ch.variant.content_type))
        bypassed = cl.limits_size and cl.refused is not None and ch.accepted >= cl.refused
        if bypassed and (best is None or ch.accepted > best[0]):
            best = (ch.accepted, cl, ch)
    if best is None:
        return None
    _, cl, ch = best
    if cl.refused is None or ch.accepted is None:
        return None
    return _finding(
        "chunked-bypass", facts,
        f"refuses {size_text(cl.refused)} with Content-Length but accepted {size_text(ch.accepted)} chunked",
        f"Content-Length: refused at {size_text(cl.refused)}; chunked: accepted {size_text(ch.accepted)}"
        + ("" if ch.bounded else ", and refused no chunked size"),
        {"content_length_refused": cl.refused, "chunked_accepted": ch.accepted,
         "chunked_refused": ch.refused, "content_type": ch.variant.content_type},
    )  # fmt: skip


def check_content_type_bypass(facts: ScanFacts, th: Thresholds) -> Finding | None:
    plain = [
        s for s in facts.summaries()
        if s.variant.framing is Framing.CONTENT_LENGTH and not s.variant.gzip and not s.variant.expect
    ]  # fmt: skip
    best: tuple[int, VariantSummary, VariantSummary] | None = None
    for limited in plain:
        if not limited.limits_size or limited.refused is None:
            continue
        for other in plain:
            if other is limited or other.accepted is None or other.accepted < limited.refused:
                continue
            if best is None or other.accepted > best[0]:
                best = (other.accepted, limited, other)
    if best is None:
        return None
    _, limited, other = best
    if limited.refused is None or other.accepted is None:
        return None
    per_type: dict[str, EvidenceValue] = {
        s.variant.content_type: {"largest_accepted": s.accepted, "smallest_refused": s.refused} for s in plain
    }
    return _finding(
        "content-type-bypass", facts,
        f"refuses {size_text(limited.refused)} as {limited.variant.content_type} but accepted "
        f"{size_text(other.accepted)} as {other.variant.content_type}",
        f"{limited.variant.content_type}: refused at {size_text(limited.refused)}; "
        f"{other.variant.content_type}: accepted {size_text(other.accepted)}",
        {"limited_type": limited.variant.content_type, "limited_refused": limited.refused,
         "bypass_type": other.variant.content_type, "bypass_accepted": other.accepted,
         "per_type": per_type},
    )  # fmt: skip


def check_late_rejection(facts: ScanFacts, th: Thresholds) -> Finding | None:
    # Judged on each variant's largest refused body: near a limit, a body that fits in the socket
    # buffers is "sent" before the server reads it, whatever the server does.
    largest: dict[Variant, Measurement] = {}
    for m in facts.measurements:
        if m.variant.gzip or m.verdict is not Verdict.REFUSED or m.refusal is not Refusal.STATUS:
            continue
        if m.variant not in largest or m.size > largest[m.variant].size:
            largest[m.variant] = m
    late = []
    for m in largest.values():
        ex = m.exchange
        if ex.sent_at_response is None or m.size < max(4 * ex.uncertainty, MiB):
            continue
        if ex.sent_at_response >= 0.9 * m.wire_size:
            late.append(m)
    if not late:
        return None
    worst = max(late, key=lambda m: m.size)
    accepted = worst.accepted_before_answer or (0, 0)
    return _finding(
        "late-rejection", facts,
        f"refused a {size_text(worst.size)} body with {worst.exchange.status} only after reading "
        f"at least {size_text(accepted[0])} of it",
        f"{worst.exchange.status} after {worst.exchange.total_s:.2f}s, {size_text(accepted[0])}"
        f"–{size_text(accepted[1])} read first ({worst.variant.label})",
        {"probes": [_probe_brief(m) for m in late], "uncertainty_bytes": worst.exchange.uncertainty},
    )  # fmt: skip


# -- memory rules ---------------------------------------------------------------------------------


def check_amplification(facts: ScanFacts, th: Thresholds) -> Finding | None:
    best: tuple[float, str, dict[str, EvidenceValue]] | None = None
    variants = dict.fromkeys(m.variant for m in facts.measurements)
    for variant in variants:
        points = [
            (m.size, m.rss_delta) for m in facts.measurements
            if m.variant == variant and m.verdict is Verdict.ACCEPTED and m.rss_delta is not None
        ]  # fmt: skip
        big = [(s, d) for s, d in points if s >= th.amplification_min_size]
        if not big:
            continue
        # Decided at the largest body: a worker's first-request warm-up and a garbage collector's lag
        # are megabytes, which only a body far larger than them can tell apart from buffering.
        size, delta = max(big)
        ratio = delta / size
        fit_points = [(s, d) for s, d in points if s >= MiB] or points
        fitted = slope([float(s) for s, _ in fit_points], [float(d) for _, d in fit_points])
        if ratio >= th.amplification and (best is None or ratio > best[0]):
            values: dict[str, EvidenceValue] = {
                "variant": variant.label, "rss_per_body_byte": round(ratio, 3),
                "fitted_slope": round(fitted, 3), "largest_body": size, "rss_growth_at_largest": delta,
                "points": [[s, d] for s, d in sorted(points)],
            }  # fmt: skip
            how = "a gzip body inflated to" if variant.gzip else "a body of"
            best = (ratio, f"peak RSS grew by {size_text(delta)} for {how} {size_text(size)}", values)
    if best is None:
        return None
    ratio, summary, values = best
    return _finding(
        "memory-amplification",
        facts,
        f"server memory grows with the body: {ratio:.2f} bytes of RSS per body byte",
        summary + f" ({values['variant']}); slope over the ladder {values['fitted_slope']}",
        values,
    )


def check_retention(facts: ScanFacts, th: Thresholds) -> Finding | None:
    r = facts.retention
    if r is None:
        return None
    floor = max(th.retention_ratio * r.size, th.retention_min_bytes)
    if r.bytes_per_request < floor:
        return None
    if r.late_bytes_per_request < 0.5 * floor or r.median_bytes_per_request < 0.5 * floor:
        return None
    return _finding(
        "memory-retention", facts,
        f"memory grows by {size_text(r.bytes_per_request)} per request of {size_text(r.size)} "
        f"({r.bytes_per_request / r.size:.0%} of the body) and keeps growing",
        f"{r.answered} requests of {size_text(r.size)}: RSS {size_text(r.rss[0])} -> {size_text(r.rss[-1])}, "
        f"{size_text(r.bytes_per_request)}/request overall, {size_text(r.late_bytes_per_request)}/request "
        "in the later rounds",
        {"bytes_per_request": round(r.bytes_per_request), "late_bytes_per_request":
         round(r.late_bytes_per_request), "median_bytes_per_request":
         round(r.median_bytes_per_request), "body_size": r.size,
         "ratio_to_body": round(r.bytes_per_request / r.size, 3), "rss_after_each_round": list(r.rss),
         "requests_per_round": r.per_round, "warmup": r.warmup, "variant": r.variant.label},
    )  # fmt: skip


# -- load and availability rules ------------------------------------------------------------------


def check_rate_limit(facts: ScanFacts, th: Thresholds) -> Finding | None:
    b = facts.burst
    if b is None or b.throttled:
        return None
    advertised = {h for m in facts.measurements for h in rate_limit_headers(m.exchange)}
    advertised |= {h for ex in facts.side_exchanges for h in rate_limit_headers(ex)}
    if advertised or b.rate_limit_headers:
        return None
    return _finding(
        "no-rate-limit", facts,
        f"{b.requests} requests of {size_text(b.size)} ({b.concurrency} at a time) were all let through",
        f"{b.requests} x {size_text(b.size)} in {b.duration_s:.2f}s: "
        + ", ".join(f"{k} x{v}" for k, v in b.statuses.items())
        + "; no 429, Retry-After or RateLimit headers",
        {"requests": b.requests, "concurrency": b.concurrency, "body_size": b.size,
         "outcomes": dict(b.statuses), "seconds": round(b.duration_s, 3)},
    )  # fmt: skip


def check_degradation(facts: ScanFacts, th: Thresholds) -> Finding | None:
    problems: list[str] = []
    severity = Severity.MEDIUM
    values: dict[str, EvidenceValue] = {}
    measurements = list(facts.measurements)
    if facts.unavailable_reason is not None and measurements:
        measurements.pop()  # the probe that found the target gone is target-unavailable's evidence
    failed = [m for m in measurements if m.verdict is Verdict.ERROR]
    if failed:
        severity = Severity.HIGH
        problems.append(f"{len(failed)} probe(s) failed (5xx or dropped after the body)")
        values["failed_probes"] = [_probe_brief(m) for m in failed[:10]]
    hung = [m for m in measurements if m.verdict is Verdict.NO_ANSWER]
    if hung:
        labels = sorted({m.variant.label for m in hung})
        problems.append(f"{len(hung)} probe(s) got no answer ({', '.join(labels)})")
        values["unanswered_probes"] = [_probe_brief(m) for m in hung[:10]]
    b = facts.burst
    if b is not None:
        if b.errors or b.no_answer:
            severity = Severity.HIGH
            problems.append(f"burst: {b.errors} error(s), {b.no_answer} unanswered of {b.requests}")
        if b.quiet_latencies and b.latencies:
            quiet = statistics.median(b.quiet_latencies)
            p90 = sorted(b.latencies)[int(0.9 * (len(b.latencies) - 1))]
            values["burst_latency"] = {"quiet_median_s": round(quiet, 4), "burst_p90_s": round(p90, 4)}
            if p90 > max(quiet * th.latency_factor, quiet + th.latency_floor_s):
                problems.append(f"burst latency p90 {p90:.2f}s against {quiet:.2f}s quiet")
        values["burst_outcomes"] = dict(b.statuses)
    if not problems:
        return None
    return _finding("degradation", facts, "the service degraded: " + "; ".join(problems),
                    "; ".join(problems), values, severity=severity)  # fmt: skip


def check_unavailable(facts: ScanFacts, th: Thresholds) -> Finding | None:
    if facts.unavailable_reason is None:
        return None
    before = [_probe_brief(m) for m in facts.measurements[-3:]]
    return _finding(
        "target-unavailable", facts,
        "the target stopped answering during the scan",
        facts.unavailable_reason,
        {"reason": facts.unavailable_reason, "preceding_probes": list(before),
         "probes_before": len(facts.measurements)},
    )  # fmt: skip


CHECKS: tuple[tuple[str, Callable[[ScanFacts, Thresholds], Finding | None]], ...] = (
    ("target-unavailable", check_unavailable),
    ("unbounded-body", check_unbounded),
    ("high-limit", check_high_limit),
    ("chunked-bypass", check_chunked_bypass),
    ("content-type-bypass", check_content_type_bypass),
    ("late-rejection", check_late_rejection),
    ("memory-amplification", check_amplification),
    ("memory-retention", check_retention),
    ("no-rate-limit", check_rate_limit),
    ("degradation", check_degradation),
)


def analyse(facts: ScanFacts, thresholds: Thresholds | None = None) -> tuple[list[Finding], list[str]]:
    """Findings, most severe first, and diagnostics for checks that could not run."""
    th = thresholds or Thresholds()
    findings: list[Finding] = []
    diagnostics: list[str] = []
    for rule, check in CHECKS:
        try:
            found = check(facts, th)
        except Exception as exc:  # a broken check is a diagnostic, not a broken scan
            diagnostics.append(f"check {rule} could not be evaluated: {type(exc).__name__}: {exc}")
            continue
        if found is not None:
            findings.append(found)
    findings.sort(key=lambda f: -f.severity)
    return findings, diagnostics
