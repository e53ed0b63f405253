"""The scan's records: what each probe was, what it measured, and the report they add up to.

Everything here is a frozen dataclass with a ``to_dict`` giving the JSON shape documented in
docs/scan.md (schema version :data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hmacguard.findings import EvidenceValue, Finding, fingerprints, severity_summary
from hmacguard.scan.bodies import shape_for
from hmacguard.scan.wire import Exchange, Framing

__all__ = [
    "SCHEMA_VERSION",
    "BurstResult",
    "EnforcementProbe",
    "EnforcementResult",
    "HeldResult",
    "LimitEstimate",
    "Measurement",
    "ProbeKind",
    "RetentionResult",
    "ScanEvent",
    "ScanReport",
    "Stack",
    "Untested",
    "Variant",
    "Verdict",
]

#: Version of the JSON report's shape: the major number changes on any incompatible change, the
#: minor one when something is added (1.1: ``enforcement``; 1.2: ``held_uploads``; 1.3: its
#: ``sources``). See docs/scan.md.
SCHEMA_VERSION = "1.4"

JSON = dict[str, Any]


class Verdict(str, enum.Enum):
    """What a probe tells about the body's size, read from the outcome, the timing and the status."""

    ACCEPTED = "accepted"  # the server consumed the whole body, then answered (any status)
    REFUSED = "refused"  # answered (or cut the connection) without consuming it all, or said 413
    NO_ANSWER = "no-answer"  # the connection stayed open and silent past the timeout
    ERROR = "error"  # 5xx, or the connection dropped after the whole body was sent
    THROTTLED = "throttled"  # 429
    UNREACHABLE = "unreachable"  # could not connect, or the answer was not HTTP


class Refusal(str, enum.Enum):
    """How a refusal showed (decides whether a limit can be bisected)."""

    STATUS = "status"  # 413, or an error status the small baseline did not get
    EARLY = "early"  # answered before reading the body, with the baseline's status
    CUT = "cut"  # reset or closed before the body was sent, with no answer


@dataclass(frozen=True)
class Variant:
    """How a body is framed and labelled: the dimensions a size limit can forget."""

    framing: Framing = Framing.CONTENT_LENGTH
    content_type: str = "application/json"
    gzip: bool = False
    expect: bool = False

    @property
    def label(self) -> str:
        parts = [self.framing.value, shape_for(self.content_type).value]
        if self.gzip:
            parts.append("gzip")
        if self.expect:
            parts.append("expect-100")
        return " ".join(parts)

    def to_dict(self) -> JSON:
        return {
            "label": self.label,
            "framing": self.framing.value,
            "content_type": self.content_type,
            "content_encoding": "gzip" if self.gzip else None,
            "expect_continue": self.expect,
        }


@dataclass(frozen=True)
class Measurement:
    """One probe: what was sent, what came back, what the server's memory did meanwhile."""

    phase: str
    variant: Variant
    #: Body size as the server holds it once decoded (the inflated size for gzip).
    size: int
    wire_size: int
    exchange: Exchange
    verdict: Verdict
    refusal: Refusal | None = None
    rss_before: int | None = None
    rss_peak: int | None = None
    rss_after: int | None = None

    @property
    def rss_delta(self) -> int | None:
        if self.rss_before is None or self.rss_peak is None:
            return None
        return max(0, self.rss_peak - self.rss_before)

    @property
    def accepted_before_answer(self) -> tuple[int, int] | None:
        """(at least, at most) body bytes the server had read when it answered."""
        sent = self.exchange.sent_at_response
        if sent is None:
            return None
        return max(0, sent - self.exchange.uncertainty), sent

    def to_dict(self) -> JSON:
        ex = self.exchange
        accepted = self.accepted_before_answer
        return {
            "phase": self.phase,
            "variant": self.variant.to_dict(),
            "size": self.size,
            "wire_size": self.wire_size,
            "verdict": self.verdict.value,
            "refusal": self.refusal.value if self.refusal else None,
            "outcome": ex.outcome.value,
            "status": ex.status,
            "reason": ex.reason or None,
            "interim": list(ex.interim),
            "body_sent": ex.body_sent,
            "body_complete": ex.body_complete,
            "sent_at_response": ex.sent_at_response,
            "accepted_before_answer": (
                None if accepted is None else {"min": accepted[0], "max": accepted[1]}
            ),
            "uncertainty": ex.uncertainty,
            "connect_s": round(ex.connect_s, 6),
            "first_byte_s": None if ex.first_byte_s is None else round(ex.first_byte_s, 6),
            "total_s": round(ex.total_s, 6),
            "send_error": ex.send_error,
            "error": ex.error,
            "rss_before": self.rss_before,
            "rss_peak": self.rss_peak,
            "rss_after": self.rss_after,
        }


@dataclass(frozen=True)
class LimitEstimate:
    """The effective body limit of one variant: between ``accepted`` and ``refused`` bytes."""

    variant: Variant
    accepted: int | None
    refused: int | None
    refusal: Refusal | None
    #: Whether refused/accepted is within the bisection precision.
    precise: bool = False
    probes: int = 0

    @property
    def bounded(self) -> bool:
        return self.refused is not None

    def to_dict(self) -> JSON:
        return {
            "variant": self.variant.label,
            "largest_accepted": self.accepted,
            "smallest_refused": self.refused,
            "refusal": self.refusal.value if self.refusal else None,
            "precise": self.precise,
            "bisection_probes": self.probes,
        }


@dataclass(frozen=True)
class RetentionResult:
    """RSS after each round of identical requests (after a warm-up), and the fitted growth."""

    variant: Variant
    size: int
    warmup: int
    per_round: int
    rss: tuple[int, ...]
    bytes_per_request: float
    #: Growth per request over the second half of the rounds (a leak keeps growing).
    late_bytes_per_request: float
    #: Median of each round's growth per request (a garbage collector's sawtooth averages out).
    median_bytes_per_request: float
    answered: int
    statuses: tuple[int, ...]

    def to_dict(self) -> JSON:
        return {
            "variant": self.variant.label,
            "body_size": self.size,
            "warmup_requests": self.warmup,
            "requests_per_round": self.per_round,
            "rss_after_each_round": list(self.rss),
            "bytes_per_request": round(self.bytes_per_request, 1),
            "late_bytes_per_request": round(self.late_bytes_per_request, 1),
            "median_bytes_per_request": round(self.median_bytes_per_request, 1),
            "ratio_to_body": round(self.bytes_per_request / self.size, 4) if self.size else None,
            "answered": self.answered,
            "statuses": sorted(set(self.statuses)),
        }


@dataclass(frozen=True)
class HeldResult:
    """Many uploads held open at once (scan/probes/held.py): how many, what they sent, what the
    server answered instead of waiting, and its RSS before, once the first piece was on every
    connection, and with every body all but finished."""

    variant: Variant
    #: The declared Content-Length of each upload.
    size: int
    opened: int
    #: Uploads still open and unanswered when the memory was read, the body bytes they had sent,
    #: and how many of those they had sent at the middle reading.
    held: int
    held_bytes: int
    first_bytes: int
    #: The others: a status ("413"), or how the connection ended ("closed", "connect-failed").
    answered: Mapping[str, int]
    rss_before: int
    rss_first: int
    rss_held: int
    rss_peak: int | None
    seconds: float
    #: The late reading, three quarters of the way from the first piece to the end: the bytes the held
    #: uploads had sent by then, and the RSS. ``None`` when it was not taken (sending cut short).
    late_bytes: int | None = None
    rss_late: int | None = None
    #: Source addresses the uploads came from (``--held-sources``; 1: this host's own).
    sources: int = 1

    @property
    def growth(self) -> int:
        return self.rss_held - self.rss_before

    # After the late reading: what the last quarter of the sending added, and the RSS growth meanwhile
    # -- flat once a process-wide bound is reached, however much it grew before.
    @property
    def tail_bytes(self) -> int:
        return 0 if self.late_bytes is None else self.held_bytes - self.late_bytes

    @property
    def tail_growth(self) -> int:
        return 0 if self.rss_late is None else self.rss_held - self.rss_late

    # After the middle reading: the bytes the held uploads sent, and the RSS growth meanwhile.
    @property
    def added_bytes(self) -> int:
        return self.held_bytes - self.first_bytes

    @property
    def added_growth(self) -> int:
        return self.rss_held - self.rss_first

    @property
    def growth_per_added_byte(self) -> float:
        """Bytes of RSS per body byte after the middle reading: what the rule judges (0 when the
        still-open uploads sent nothing more)."""
        return self.added_growth / max(1, self.added_bytes)

    def to_dict(self) -> JSON:
        return {
            "variant": self.variant.label, "declared_size": self.size, "opened": self.opened,
            "held": self.held, "held_bytes": self.held_bytes, "first_bytes": self.first_bytes,
            "answered": dict(self.answered), "rss_before": self.rss_before, "rss_first": self.rss_first,
            "rss_held": self.rss_held, "rss_peak": self.rss_peak, "rss_growth": self.growth,
            "seconds": round(self.seconds, 3), "late_bytes": self.late_bytes, "rss_late": self.rss_late,
            "sources": self.sources,
        }  # fmt: skip


@dataclass(frozen=True)
class BurstResult:
    variant: Variant
    size: int
    requests: int
    concurrency: int
    quiet_latencies: tuple[float, ...]
    latencies: tuple[float, ...]
    statuses: Mapping[str, int]
    throttled: int
    errors: int
    no_answer: int
    rate_limit_headers: tuple[str, ...]
    retry_after: str | None
    duration_s: float
    rss_peak: int | None = None
    rss_before: int | None = None

    def to_dict(self) -> JSON:
        return {
            "variant": self.variant.label,
            "body_size": self.size,
            "requests": self.requests,
            "concurrency": self.concurrency,
            "quiet_latencies_s": [round(x, 6) for x in self.quiet_latencies],
            "latencies_s": [round(x, 6) for x in self.latencies],
            "outcomes": dict(self.statuses),
            "throttled": self.throttled,
            "errors": self.errors,
            "no_answer": self.no_answer,
            "rate_limit_headers": list(self.rate_limit_headers),
            "retry_after": self.retry_after,
            "duration_s": round(self.duration_s, 6),
            "rss_before": self.rss_before,
            "rss_peak": self.rss_peak,
        }


class ProbeKind(str, enum.Enum):
    """What an enforcement probe asks the endpoint (scan/probes/enforcement.py)."""

    UNSIGNED = "unsigned"  # no signature header, at the scanned path
    FORGED = "forged"  # a well-formed but wrong signature, at the scanned path
    SIBLING = "sibling"  # unsigned, at a random path beside it: what a catch-all route answers
    SPELLING = "spelling"  # unsigned, at another spelling of the scanned path
    SIGNED = "signed"  # correctly signed and fresh (needs the secret)
    REPLAY = "replay"  # the very same signed delivery, sent again
    #: the same delivery again, its signature header respelled (an entry receivers skip added):
    #: sent when the identical replay was refused and the scheme's header has another spelling
    REPLAY_RESPELLED = "replay-respelled"
    STALE_PAST = "stale-past"  # correctly signed with a timestamp an hour old
    STALE_FUTURE = "stale-future"  # correctly signed with a timestamp an hour ahead


@dataclass(frozen=True)
class EnforcementProbe:
    """One small request of the enforcement phase: what it was, where it went, what came back."""

    kind: ProbeKind
    #: The request target exactly as sent (path and query).
    target: str
    exchange: Exchange
    #: For a spelling: its name (``double-slash``, ``encoded-slash``, ...).
    spelling: str = ""
    #: For a signed probe: the timestamp it was signed with.
    timestamp: int | None = None

    @property
    def accepted(self) -> bool:
        """Answered 2xx: the endpoint took the request as a delivery."""
        status = self.exchange.status
        return self.exchange.responded and status is not None and 200 <= status < 300

    @property
    def answer(self) -> tuple[int | None, bytes]:
        """Status and the start of the body: what tells a catch-all's answer from a handler's."""
        return self.exchange.status, self.exchange.body_head

    def to_dict(self) -> JSON:
        ex = self.exchange
        return {
            "kind": self.kind.value,
            "target": self.target,
            "spelling": self.spelling or None,
            "timestamp": self.timestamp,
            "accepted": self.accepted,
            "outcome": ex.outcome.value,
            "status": ex.status,
            "reason": ex.reason or None,
            "total_s": round(ex.total_s, 6),
            "error": ex.error,
        }


@dataclass(frozen=True)
class EnforcementResult:
    """The enforcement phase: every probe it sent, and how they were built."""

    probes: tuple[EnforcementProbe, ...]
    content_type: str
    #: ``"test-event"`` (the scanner's own, see docs/scan.md) or ``"file"`` (``--probe-body``).
    body: str
    body_bytes: int
    #: Whether the probes could be signed correctly (a secret was given).
    signed: bool
    #: Whether the scheme signs a timestamp (so that stale ones can be tried).
    timestamped: bool

    def of(self, *kinds: ProbeKind) -> list[EnforcementProbe]:
        return [p for p in self.probes if p.kind in kinds]

    def first(self, kind: ProbeKind) -> EnforcementProbe | None:
        return next((p for p in self.probes if p.kind is kind), None)

    def to_dict(self) -> JSON:
        return {
            "content_type": self.content_type,
            "body": self.body,
            "body_bytes": self.body_bytes,
            "signed": self.signed,
            "timestamped": self.timestamped,
            "probes": [p.to_dict() for p in self.probes],
        }


@dataclass(frozen=True)
class ScanEvent:
    """Progress, as the scan goes: handed to the ``progress`` callback of ``run_scan``."""

    phase: str
    message: str
    step: int
    steps: int
    bytes_sent: int
    budget_bytes: int
    elapsed_s: float
    budget_seconds: float
    measurement: Measurement | None = None


@dataclass(frozen=True)
class Untested:
    """Something the plan wanted to test and did not, with the reason (never skipped silently)."""

    what: str
    reason: str

    def to_dict(self) -> JSON:
        return {"what": self.what, "reason": self.reason}


@dataclass(frozen=True)
class Stack:
    """The fingerprinted stack: framework and server, with the clues that named them."""

    framework: str | None = None
    server: str | None = None
    clues: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        named = [x for x in (self.framework, self.server) if x]
        return " on ".join(named) if named else "unknown"

    def to_dict(self) -> JSON:
        return {"framework": self.framework, "server": self.server, "clues": list(self.clues)}


@dataclass(frozen=True)
class ScanReport:
    """Everything a scan found and measured; rendered by hmacguard.report in any format."""

    kind: ClassVar[str] = "scan"

    url: str
    method: str
    scheme: str
    signed: bool
    findings: tuple[Finding, ...]
    score: int
    grade: str
    stack: Stack
    measurements: tuple[Measurement, ...]
    limits: tuple[LimitEstimate, ...]
    retention: RetentionResult | None
    burst: BurstResult | None
    untested: tuple[Untested, ...]
    notes: tuple[str, ...]
    bytes_sent: int
    requests: int
    duration_s: float
    started_at: str
    memory_source: str | None
    budget: Mapping[str, Any] = field(default_factory=dict)
    #: Set when the target stopped answering (the scan ended early).
    unavailable: bool = False
    #: The ids of the rules the scan checked, in report order.
    rules: tuple[str, ...] = ()
    #: The enforcement phase's probes (None when the phase did not run).
    enforcement: EnforcementResult | None = None
    #: The held-uploads phase (None when it did not run).
    held: HeldResult | None = None

    def summary(self) -> dict[str, EvidenceValue]:
        return {**severity_summary(self.findings), "score": self.score, "grade": self.grade}

    def without_baseline(self, known: Collection[str]) -> ScanReport:
        """The report without the findings a baseline already has (their fingerprints are ``known``).

        The score and grade stay those of the endpoint as measured (a baseline hides known findings
        from the exit code and the listing; it does not make the endpoint safer); a note says how
        many findings were hidden.
        """
        kept = tuple(
            f for f, k in zip(self.findings, fingerprints(self.findings), strict=True) if k not in known
        )
        hidden = len(self.findings) - len(kept)
        if not hidden:
            return self
        note = f"{hidden} finding(s) already in the baseline are not listed (score and grade count them)"
        return replace(self, findings=kept, notes=(*self.notes, note))

    def to_dict(self) -> JSON:
        return {
            "schema_version": SCHEMA_VERSION,
            "target": {
                "url": self.url,
                "method": self.method,
                "scheme": self.scheme,
                "signed": self.signed,
            },
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "score": self.score,
            "grade": self.grade,
            "stack": self.stack.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "unavailable": self.unavailable,
            "memory_source": self.memory_source,
            "limits": [limit.to_dict() for limit in self.limits],
            "retention": self.retention.to_dict() if self.retention else None,
            "burst": self.burst.to_dict() if self.burst else None,
            "enforcement": self.enforcement.to_dict() if self.enforcement else None,
            "held_uploads": self.held.to_dict() if self.held else None,
            "measurements": [m.to_dict() for m in self.measurements],
            "untested": [u.to_dict() for u in self.untested],
            "notes": list(self.notes),
            "traffic": {"bytes_sent": self.bytes_sent, "requests": self.requests},
            "budget": dict(self.budget),
        }
