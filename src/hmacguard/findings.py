"""The one model of findings every detector produces and every report renders.

A :class:`Finding` is frozen and complete when built: rule id, severity, where, what was measured and
what to do. The :data:`RULES` catalogue maps each stable rule id to its title, category, CWE, OWASP
reference and generic remediation; detectors register their rules with :func:`register_rule`, which
validates at registration so a bad rule fails at import, not in a user's report.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

from hmacguard.errors import ConfigurationError

__all__ = [
    "RULES",
    "SCAN_RULE_IDS",
    "Category",
    "Evidence",
    "Finding",
    "Location",
    "Rule",
    "Severity",
    "get_rule",
    "register_rule",
]

#: A JSON-representable evidence value.
EvidenceValue = Union[  # noqa: UP007 (a recursive alias needs Union on 3.10)
    str, int, float, bool, None, list["EvidenceValue"], dict[str, "EvidenceValue"]
]


class Severity(enum.IntEnum):
    """Ordered so that ``finding.severity >= Severity.HIGH`` reads as it should."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse ``"high"`` (any case); raise ConfigurationError naming the choices otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(s.name.lower() for s in cls)
            raise ConfigurationError(f"unknown severity {text!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Category(str, enum.Enum):
    INPUT_VALIDATION = "Input Validation"
    DOS_POTENTIAL = "DoS Potential"
    RATE_LIMITING = "Rate Limiting"
    MEMORY_LEAK = "Memory Leak"
    CRYPTOGRAPHY = "Cryptography"
    AVAILABILITY = "Availability"


@dataclass(frozen=True)
class Location:
    """Where a finding is: an endpoint (``url``, ``method``) or source (``path``, ``line``)."""

    url: str | None = None
    method: str | None = None
    path: str | None = None
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    snippet: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            return where if self.column is None else f"{where}:{self.column}"
        if self.url is not None:
            return f"{self.method or 'POST'} {self.url}"
        return "<unknown>"


@dataclass(frozen=True)
class Evidence:
    """What was measured or seen: a one-line summary and named values (JSON-representable)."""

    summary: str
    values: Mapping[str, EvidenceValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen all the way down: nobody mutates evidence after the finding is built.
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))


@dataclass(frozen=True)
class Rule:
    """A catalogue entry. ``doc`` is the long explanation shown by ``hmacguard rules --explain``."""

    id: str
    title: str
    category: Category
    severity: Severity
    cwe: tuple[int, ...]
    remediation: str
    owasp: str = "API4:2023 Unrestricted Resource Consumption"
    doc: str = ""
    source: str = "scan"


_RULE_ID = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_RULES: dict[str, Rule] = {}
#: Read-only view of every registered rule, by id.
RULES: Mapping[str, Rule] = MappingProxyType(_RULES)


def register_rule(rule: Rule) -> Rule:
    """Add ``rule`` to the catalogue, validating it; re-registering the identical rule is a no-op."""
    if not _RULE_ID.match(rule.id):
        raise ConfigurationError(f"rule id {rule.id!r} is not lower-case-kebab")
    if not rule.title or not rule.remediation:
        raise ConfigurationError(f"rule {rule.id!r} needs a title and a remediation")
    if not rule.cwe or any(c <= 0 for c in rule.cwe):
        raise ConfigurationError(f"rule {rule.id!r} needs at least one CWE number")
    existing = _RULES.get(rule.id)
    if existing is not None and existing != rule:
        raise ConfigurationError(f"rule id {rule.id!r} registered twice with different content")
    _RULES[rule.id] = rule
    return rule


def get_rule(rule_id: str) -> Rule:
    try:
        return _RULES[rule_id]
    except KeyError:
        raise ConfigurationError(f"unknown rule {rule_id!r}") from None


@dataclass(frozen=True)
class Finding:
    """One problem found by a detector, complete when built."""

    rule: str
    severity: Severity
    message: str
    location: Location
    evidence: Evidence
    remediation: str
    #: Optional stack-specific hint (e.g. "Django: set DATA_UPLOAD_MAX_MEMORY_SIZE").
    stack: str | None = None
    confidence: str = "high"

    def __post_init__(self) -> None:
        if self.rule not in _RULES:
            raise ConfigurationError(f"finding for unregistered rule {self.rule!r}")

    @property
    def catalogue(self) -> Rule:
        return _RULES[self.rule]

    @property
    def category(self) -> Category:
        return self.catalogue.category

    @property
    def title(self) -> str:
        return self.catalogue.title

    @property
    def cwe(self) -> tuple[int, ...]:
        return self.catalogue.cwe

    @property
    def owasp(self) -> str:
        return self.catalogue.owasp

    def to_dict(self) -> dict[str, EvidenceValue]:
        """The versioned JSON shape shared by every report (docs/scan.md, "JSON report")."""
        loc = {k: v for k, v in vars(self.location).items() if v is not None}
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity.label,
            "category": self.category.value,
            "cwe": [f"CWE-{c}" for c in self.cwe],
            "owasp": self.owasp,
            "message": self.message,
            "location": loc,
            "evidence": {"summary": self.evidence.summary, "values": dict(self.evidence.values)},
            "remediation": self.remediation,
            "stack": self.stack,
            "confidence": self.confidence,
        }


def worst(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among ``findings``, or None when there are none."""
    return max((f.severity for f in findings), default=None)


# --- The scanner's catalogue (stable ids: used by every report and by CI) -----------------------

_CWE_400 = 400  # Uncontrolled Resource Consumption
_CWE_770 = 770  # Allocation of Resources Without Limits or Throttling
_CWE_401 = 401  # Missing Release of Memory after Effective Lifetime

for _rule in (
    Rule(
        "unbounded-body",
        "Endpoint accepts very large bodies without refusing them",
        Category.INPUT_VALIDATION,
        Severity.HIGH,
        (_CWE_400, _CWE_770),
        "Enforce a hard body cap (1 MiB is ample for webhooks) that holds for every framing, "
        "answer 413 before reading past it, and compute the HMAC while streaming.",
    ),
    Rule(
        "high-limit",
        "Body limit is set, but far above what an HMAC endpoint needs",
        Category.INPUT_VALIDATION,
        Severity.MEDIUM,
        (_CWE_770,),
        "Lower the body limit to what the largest legitimate payload needs (usually ≤ 1 MiB).",
    ),
    Rule(
        "chunked-bypass",
        "Size limit is skipped for chunked bodies (no Content-Length)",
        Category.INPUT_VALIDATION,
        Severity.HIGH,
        (_CWE_400, _CWE_770),
        "Count bytes while reading the stream instead of trusting Content-Length; refuse with 413 "
        "the moment the count passes the cap.",
    ),
    Rule(
        "content-type-bypass",
        "Size limit applies to some content types only",
        Category.INPUT_VALIDATION,
        Severity.HIGH,
        (_CWE_400, _CWE_770),
        "Apply the cap to the raw body before any content-type-specific parser, for every type.",
    ),
    Rule(
        "late-rejection",
        "Oversized bodies are refused only after being read",
        Category.DOS_POTENTIAL,
        Severity.MEDIUM,
        (_CWE_400,),
        "Refuse on Content-Length before reading, and for chunked bodies at the cap; answer 413 "
        "with Connection: close instead of draining the rest.",
    ),
    Rule(
        "memory-amplification",
        "Server memory grows with body size",
        Category.DOS_POTENTIAL,
        Severity.HIGH,
        (_CWE_400, _CWE_770),
        "Stream the body into the HMAC in chunks; never hold the whole body (or copies of it).",
    ),
    Rule(
        "memory-retention",
        "Memory is kept after each request",
        Category.MEMORY_LEAK,
        Severity.HIGH,
        (_CWE_401,),
        "Keep bodies and signatures request-scoped: no module-level lists or caches holding them, "
        "no attributes on long-lived objects; key caches by a hash of the body.",
    ),
    Rule(
        "no-rate-limit",
        "No rate limiting under a burst of large requests",
        Category.RATE_LIMITING,
        Severity.MEDIUM,
        (_CWE_770,),
        "Rate-limit per client before reading the body; answer 429 with Retry-After and RateLimit headers.",
    ),
    Rule(
        "degradation",
        "Service degrades under large-body load",
        Category.DOS_POTENTIAL,
        Severity.HIGH,
        (_CWE_400,),
        "Cap bodies, stream the HMAC and rate-limit so that a burst cannot slow or break the service.",
    ),
    Rule(
        "target-unavailable",
        "Target stopped answering during the scan",
        Category.AVAILABILITY,
        Severity.CRITICAL,
        (_CWE_400,),
        "Find what the preceding probe did to the service (crash, OOM kill, hang) and cap bodies "
        "and concurrency so that it cannot recur.",
    ),
):
    register_rule(_rule)

#: The scanner's rule ids, in the order reports list them.
SCAN_RULE_IDS: tuple[str, ...] = (
    "unbounded-body",
    "high-limit",
    "chunked-bypass",
    "content-type-bypass",
    "late-rejection",
    "memory-amplification",
    "memory-retention",
    "no-rate-limit",
    "degradation",
    "target-unavailable",
)
