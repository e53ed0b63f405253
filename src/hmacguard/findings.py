"""The one model of findings every detector produces and every report renders.

A :class:`Finding` is frozen and complete when built: rule id, severity, where, what was measured and
what to do. The :data:`RULES` catalogue maps each stable rule id to its title, category, CWE, OWASP
reference and generic remediation; detectors register their rules with :func:`register_rule`, which
validates at registration so a bad rule fails at import, not in a user's report.

Every detector's result satisfies :class:`Result` (``kind``, ``findings``, ``rules``, ``summary()``,
``to_dict()``, ``without_baseline()``), so that renderers, baselines and exit codes never need to know
which detector produced it; :func:`fingerprints` is the one identity of a finding, shared by every
report format and every baseline.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, Union
from urllib.parse import urlsplit

from hmacguard.errors import ConfigurationError

__all__ = [
    "RULES",
    "Category",
    "Evidence",
    "Finding",
    "Location",
    "Result",
    "Rule",
    "Severity",
    "endpoint_path",
    "fingerprints",
    "get_rule",
    "register_rule",
    "severity_summary",
    "worst",
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
    AUTHENTICATION = "Authentication"


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


def severity_summary(findings: Iterable[Finding]) -> dict[str, EvidenceValue]:
    """``{"findings": N, "by_severity": {"critical": n, ...}}``: what every result's summary starts with."""
    items = list(findings)
    by_severity: dict[str, EvidenceValue] = {
        s.label: sum(1 for f in items if f.severity is s) for s in reversed(Severity)
    }
    return {"findings": len(items), "by_severity": by_severity}


def endpoint_path(url: str) -> str:
    """``http://127.0.0.1:8000/hook?x=1`` -> ``/hook?x=1`` (what identifies an endpoint)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _identity(rule: str, location: Mapping[str, Any]) -> str:
    path = location.get("path")
    if path is not None:
        # The flagged code, whitespace-normalised, rather than its line number: stable under edits
        # elsewhere in the file.
        code = " ".join(str(location.get("snippet") or f"line {location.get('line')}").split())
        return "\0".join(("source", rule, str(path), code))
    # Not the scheme, host or port: the same endpoint scanned on a developer's port 5000 and in CI on
    # a port the launcher picked is the same endpoint.
    method = str(location.get("method") or "POST").upper()
    return "\0".join(("endpoint", rule, method, endpoint_path(str(location.get("url") or ""))))


def fingerprints(findings: Iterable[Finding | Mapping[str, Any]]) -> list[str]:
    """The one identity of a finding: a stable fingerprint per finding, in order.

    Accepts findings or their :meth:`Finding.to_dict` form (a stored report). A source finding keeps
    its fingerprint when lines are added above it and loses it when the flagged code changes; an
    endpoint finding is its rule, method and path, whatever host or port served it. Identical
    identities are told apart by their occurrence index (the second gets ``...:1``).
    """
    seen: dict[str, int] = {}
    out: list[str] = []
    for item in findings:
        if isinstance(item, Finding):
            identity = _identity(item.rule, vars(item.location))
        else:
            identity = _identity(str(item.get("rule")), item.get("location") or {})
        n = seen.get(identity, 0)
        seen[identity] = n + 1
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        out.append(f"{digest}:{n}")
    return out


R = TypeVar("R", bound="Result")


class Result(Protocol):
    """What every detector hands back (scan, OpenAPI scan, audit, leaks).

    ``kind`` names it in the JSON envelope; ``findings`` are what it reports (already without those a
    baseline or an inline suppression hides); ``rules`` the ids of the rules the run checked (so that
    a clean run still documents them); ``summary()`` starts with :func:`severity_summary`;
    ``to_dict()`` is its own JSON content; ``without_baseline(known)`` the same result without the
    findings whose :func:`fingerprints` are in ``known``.
    """

    @property
    def kind(self) -> str: ...

    @property
    def findings(self) -> Sequence[Finding]: ...

    @property
    def rules(self) -> Sequence[str]: ...

    def summary(self) -> dict[str, EvidenceValue]: ...

    def to_dict(self) -> Mapping[str, Any]: ...

    def without_baseline(self: R, known: Collection[str]) -> R: ...
