"""From per-line series to verdicts: bytes per request, and growth that continues versus a plateau.

Each line's surviving bytes are sampled after every round. A least-squares slope over the *last third*
of the rounds says whether the line is still gaining memory now; the slope over the first half says
whether it gained any at all. A leak keeps its slope to the end. A bounded cache (an LRU of 128 bodies)
climbs and then holds: its tail slope falls to nothing while its head slope was real. Lines whose
growth never reaches ``min_bytes`` per request are noise (a dict resize, an interned name) and dropped.
"""

from __future__ import annotations

import linecache
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, ClassVar, Literal

from hmacguard._stats import slope
from hmacguard.findings import (
    Evidence,
    EvidenceValue,
    Finding,
    Location,
    Severity,
    fingerprints,
    get_rule,
    severity_summary,
)
from hmacguard.leaks.frames import Site, display_path
from hmacguard.leaks.heap import Measurement, SiteSeries
from hmacguard.leaks.rule import RULE

__all__ = ["LeakReport", "RetentionSite", "analyse", "format_bytes"]

Trend = Literal["growing", "plateau"]

#: Below this many bytes per request a line's growth is noise (dict resizes, interned names).
DEFAULT_MIN_BYTES = 32
#: A tail slope under this fraction of the head slope means the growth has stopped.
_PLATEAU_RATIO = 0.1


def format_bytes(n: float) -> str:
    """``65569`` -> ``"64.0 KiB"``; binary units, one decimal."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@dataclass(frozen=True)
class RetentionSite:
    """One application line that keeps memory across requests."""

    site: Site
    source: str
    #: "stored": the line put it into a long-lived object; "allocated": the line allocated it.
    how: str
    trend: Trend
    bytes_per_request: float
    objects_per_request: float
    retained_bytes: int
    series: tuple[tuple[int, int], ...]
    allocated_at: tuple[tuple[Site, int], ...] = ()
    #: For a plateau: requests after which 90% of the final size was reached.
    plateau_after: int | None = None

    @property
    def path(self) -> str:
        return display_path(self.site.path)

    @property
    def line(self) -> int:
        return self.site.line

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def to_dict(self) -> dict[str, EvidenceValue]:
        return {
            "path": self.path,
            "line": self.line,
            "source": self.source,
            "how": self.how,
            "trend": self.trend,
            "bytes_per_request": round(self.bytes_per_request, 1),
            "objects_per_request": round(self.objects_per_request, 2),
            "retained_bytes": self.retained_bytes,
            "plateau_after": self.plateau_after,
            "allocated_at": [f"{display_path(s.path)}:{s.line}" for s, _ in self.allocated_at],
            "series": [[n, b] for n, b in self.series],
        }


@dataclass(frozen=True)
class LeakReport:
    """What a run found: growing and plateauing lines, and what grew outside the application."""

    target: str
    unit: str
    requests: int
    warmup: int
    rounds: int
    sites: tuple[RetentionSite, ...]
    outside_bytes_per_request: float
    outside_top: tuple[tuple[Site, int], ...]
    run_seconds: float
    total_seconds: float
    workload: dict[str, int] = field(default_factory=dict)
    body_size: int | None = None
    min_bytes: float = DEFAULT_MIN_BYTES
    warnings: tuple[str, ...] = ()
    #: Lines left out because a baseline already has their findings.
    baselined: int = 0

    kind: ClassVar[str] = "leaks"
    rules: ClassVar[tuple[str, ...]] = (RULE,)

    @property
    def growing(self) -> tuple[RetentionSite, ...]:
        return tuple(s for s in self.sites if s.trend == "growing")

    @property
    def plateaus(self) -> tuple[RetentionSite, ...]:
        return tuple(s for s in self.sites if s.trend == "plateau")

    @property
    def bytes_per_request(self) -> float:
        """Application retention per request: the sum over lines still growing."""
        return sum(s.bytes_per_request for s in self.growing)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(_finding(self, s) for s in self.sites)

    def summary(self) -> dict[str, EvidenceValue]:
        return {
            **severity_summary(self.findings),
            "growing": len(self.growing),
            "plateaus": len(self.plateaus),
            "bytes_per_request": round(self.bytes_per_request, 1),
            "baselined": self.baselined,
        }

    def without_baseline(self, known: Collection[str]) -> LeakReport:
        """The report without the lines whose findings ``known`` (a baseline's fingerprints) has."""
        kept = tuple(
            s for s, k in zip(self.sites, fingerprints(self.findings), strict=True) if k not in known
        )
        return replace(self, sites=kept, baselined=self.baselined + len(self.sites) - len(kept))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "unit": self.unit,
            "requests": self.requests,
            "warmup": self.warmup,
            "rounds": self.rounds,
            "body_size": self.body_size,
            "bytes_per_request": round(self.bytes_per_request, 1),
            "outside_bytes_per_request": round(self.outside_bytes_per_request, 1),
            "outside_top": [
                {"location": f"{display_path(s.path)}:{s.line}", "bytes": b} for s, b in self.outside_top
            ],
            "run_seconds": round(self.run_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "responses": dict(self.workload),
            "warnings": list(self.warnings),
            "sites": [s.to_dict() for s in self.sites],
            "findings": [f.to_dict() for f in self.findings],
        }


def _classify(
    series: SiteSeries, requests: Sequence[int], min_bytes: float
) -> tuple[Trend, float, float, int | None] | None:
    n = len(requests)
    tail = max(3, n // 3 + 1)
    head = max(3, n // 2 + 1)
    xs = [float(r) for r in requests]
    tail_rate = slope(xs[-tail:], series.bytes[-tail:])
    head_rate = slope(xs[:head], series.bytes[:head])
    all_rate = slope(xs, series.bytes)
    steps = [b - a for a, b in pairwise(series.bytes[-tail:])]
    # Steady: most rounds of the tail gain memory. One jump (a dict table reallocated once, an
    # untraced block replaced by a traced one) lifts the slope without being growth.
    steady = sum(1 for d in steps if d > 0) * 3 >= len(steps) * 2
    if steady and tail_rate >= min_bytes and tail_rate >= _PLATEAU_RATIO * max(head_rate, all_rate):
        objects = slope(xs[-tail:], series.blocks[-tail:])
        return "growing", tail_rate, objects, None
    climbed = [b - a for a, b in pairwise(series.bytes[:head])]
    filling = sum(1 for d in climbed if d > 0) * 3 >= len(climbed) * 2
    if filling and head_rate >= min_bytes and series.bytes[-1] >= min_bytes * requests[-1] / 4:
        final = series.bytes[-1]
        pairs = zip(requests, series.bytes, strict=True)
        reached = next((r for r, b in pairs if b >= 0.9 * final), requests[-1])
        objects = slope(xs[:head], series.blocks[:head])
        return "plateau", head_rate, objects, reached
    return None


def analyse(
    measurement: Measurement,
    *,
    target: str,
    min_bytes: float = DEFAULT_MIN_BYTES,
    body_size: int | None = None,
    top: int = 10,
) -> LeakReport:
    """Fit every line's series and keep those that grow (or grew, then held) past ``min_bytes``."""
    found: list[RetentionSite] = []
    requests = measurement.requests
    for series in measurement.sites.values():
        verdict = _classify(series, requests, min_bytes)
        if verdict is None:
            continue
        trend, rate, objects, plateau_after = verdict
        found.append(
            RetentionSite(
                site=series.site,
                source=linecache.getline(series.site.path, series.site.line).strip(),
                how=series.how,
                trend=trend,
                bytes_per_request=rate,
                objects_per_request=max(objects, 0.0),
                retained_bytes=series.bytes[-1],
                series=tuple(zip(requests, series.bytes, strict=True)),
                allocated_at=tuple((s, b) for s, b in series.allocated_at.most_common(3) if s != series.site),
                plateau_after=plateau_after,
            )
        )
    # Growing lines first, biggest first; plateaus after them.
    found.sort(key=lambda s: (s.trend != "growing", -s.bytes_per_request))
    xs = [float(r) for r in requests]
    tail = max(3, len(xs) // 3 + 1)
    outside_rate = slope(xs[-tail:], [float(b) for b in measurement.outside[-tail:]])
    return LeakReport(
        target=target,
        unit=measurement.unit,
        requests=requests[-1],
        warmup=measurement.warmup,
        rounds=len(requests) - 1,
        sites=tuple(found[:top]),
        outside_bytes_per_request=max(0.0, outside_rate),
        outside_top=tuple(measurement.outside_top),
        run_seconds=measurement.run_seconds,
        total_seconds=measurement.total_seconds,
        workload=dict(measurement.workload),
        body_size=body_size,
        min_bytes=min_bytes,
        warnings=_warnings(measurement),
    )


def _warnings(measurement: Measurement) -> tuple[str, ...]:
    """Runs whose numbers say little: the app never got past its front door, or kept raising."""
    out: list[str] = []
    counts = measurement.workload
    total = sum(counts.values())
    answered = sum(v for k, v in counts.items() if k.isdigit() and 200 <= int(k) < 400)
    raised = sum(v for k, v in counts.items() if k.startswith("raised "))
    if measurement.unit == "request" and total and not answered:
        statuses = ", ".join(k for k in counts if k.isdigit()) or "none"
        out.append(
            f"no request succeeded (statuses: {statuses}): the app may never reach the code that "
            "keeps memory; check --path, --method and --scheme/--secret"
        )
    if raised:
        out.append(f"the app raised on {raised} of {total} requests")
    return tuple(out)


def _severity(site: RetentionSite) -> Severity:
    if site.trend == "plateau":
        return Severity.INFO
    if site.bytes_per_request >= 1024:
        return Severity.HIGH
    if site.bytes_per_request >= 256:
        return Severity.MEDIUM
    return Severity.LOW


def _finding(report: LeakReport, site: RetentionSite) -> Finding:
    rule = get_rule(RULE)
    per = format_bytes(site.bytes_per_request)
    unit = report.unit
    if site.trend == "growing":
        message = (
            f"keeps {per} and {site.objects_per_request:.1f} objects per {unit}, still growing "
            f"after {report.requests} {unit}s"
        )
        remediation = rule.remediation
    else:
        message = (
            f"bounded: grew by about {per} per {unit}, then held at "
            f"{format_bytes(site.retained_bytes)} after ~{site.plateau_after} {unit}s (a plateau, "
            f"not a leak)"
        )
        remediation = (
            "Bounded, so not a leak; check that the bound times the largest accepted body is "
            "affordable, or key the cache by a hash of the body instead of the body."
        )
    if site.how == "stored" and site.allocated_at:
        origin = ", ".join(f"{display_path(s.path)}:{s.line}" for s, _ in site.allocated_at)
        message += f"; stored here, allocated at {origin}"
    values: dict[str, EvidenceValue] = {
        "bytes_per_request": round(site.bytes_per_request),
        "objects_per_request": round(site.objects_per_request, 2),
        "trend": site.trend,
        "how": site.how,
        "retained_bytes": site.retained_bytes,
        "requests": report.requests,
        "warmup": report.warmup,
        "allocated_at": [f"{display_path(s.path)}:{s.line}" for s, _ in site.allocated_at],
        "series": [[n, b] for n, b in site.series],
    }
    if report.body_size is not None:
        values["body_size"] = report.body_size
    return Finding(
        rule=RULE,
        severity=_severity(site),
        message=message,
        location=Location(path=site.path, line=site.line, snippet=site.source or None),
        evidence=Evidence(f"{per} per {unit} ({site.trend})", values),
        remediation=remediation,
        confidence="high" if site.how == "stored" or site.trend == "growing" else "medium",
    )
