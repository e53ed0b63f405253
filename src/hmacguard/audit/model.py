"""What the audit hands back: findings, diagnostics, and the counts a report needs.

A :class:`Diagnostic` is about the audit itself, not about the code audited: a file that does not
parse (skipped), a rule that crashed on a file (the run goes on), a suppression comment that names
no rule (ignored). A file that could not be read or parsed, or a rule that crashed, makes the
result **incomplete** (:attr:`AuditResult.incomplete`): the CLI gives that outcome its own exit
status, so an audit that could not look at everything never passes for a clean one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from hmacguard.findings import Evidence, EvidenceValue, Finding, Location, Severity, get_rule

__all__ = [
    "SIZE_THRESHOLD",
    "AuditResult",
    "Diagnostic",
    "DiagnosticKind",
    "SourceFile",
    "finding_at",
]

#: Above this many bytes a body limit is "far above what an HMAC endpoint needs" (seed 000: 10 MB).
SIZE_THRESHOLD = 10 * 1024 * 1024


def mib(value: float) -> str:
    """A byte count as the MiB figure configuration rules quote (``10485760`` -> ``"10 MiB"``)."""
    return f"{value / 1024 / 1024:g} MiB"


class DiagnosticKind(str, enum.Enum):
    PARSE_ERROR = "parse-error"
    READ_ERROR = "read-error"
    RULE_ERROR = "rule-error"
    BAD_SUPPRESSION = "bad-suppression"
    TRUNCATED = "truncated"  # one rule found so much in one file that the rest are not listed


@dataclass(frozen=True)
class Diagnostic:
    """A condition of the audit run (not of the audited code)."""

    kind: DiagnosticKind
    path: str
    message: str
    line: int | None = None
    rule: str | None = None

    @property
    def leaves_gap(self) -> bool:
        """Whether some code went unaudited because of it (a parse, read or rule failure)."""
        return self.kind not in (DiagnosticKind.BAD_SUPPRESSION, DiagnosticKind.TRUNCATED)

    @property
    def level(self) -> str:
        """SARIF notification level: a crashed rule is an error, the rest warnings."""
        return "error" if self.kind is DiagnosticKind.RULE_ERROR else "warning"

    def to_dict(self) -> dict[str, EvidenceValue]:
        out: dict[str, EvidenceValue] = {"kind": self.kind.value, "path": self.path}
        out["message"] = self.message
        if self.line is not None:
            out["line"] = self.line
        if self.rule is not None:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True)
class SourceFile:
    """A file's path as reported (relative to the working directory when under it) and text."""

    path: str
    text: str
    #: Where the file is on disk (for parsers that read files themselves, like crossplane).
    fs_path: str = ""

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line(self, number: int) -> str:
        lines = self.lines
        return lines[number - 1] if 0 < number <= len(lines) else ""


_SNIPPET = 240


def finding_at(
    rule_id: str,
    source: SourceFile,
    line: int,
    message: str,
    *,
    column: int | None = None,
    end_line: int | None = None,
    values: Mapping[str, EvidenceValue] | None = None,
    severity: Severity | None = None,
    stack: str | None = None,
    confidence: str = "high",
    remediation: str | None = None,
) -> Finding:
    """A finding at ``source:line`` with the line as snippet; catalogue defaults for the rest."""
    rule = get_rule(rule_id)
    text = source.line(line)
    if len(text) > _SNIPPET:
        # A minified line: show the part around the column, not a copy of the whole line.
        start = max(0, (column or 1) - 1 - _SNIPPET // 4)
        text = text[start : start + _SNIPPET]
    snippet = text.strip()
    return Finding(
        rule=rule_id,
        severity=rule.severity if severity is None else severity,
        message=message,
        location=Location(
            path=source.path,
            line=line,
            column=column,
            end_line=end_line if end_line is not None and end_line != line else None,
            snippet=snippet[:240] or None,
        ),
        evidence=Evidence(message, dict(values or {})),
        remediation=remediation or rule.remediation,
        stack=stack,
        confidence=confidence,
    )


@dataclass(frozen=True)
class AuditResult:
    """Everything one audit run produced. ``findings`` excludes suppressed and baselined ones."""

    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    baselined: int = 0
    files: int = 0
    files_parsed: int = 0
    lines: int = 0
    seconds: float = 0.0
    rules: tuple[str, ...] = field(default_factory=tuple)
    #: Findings in test code (tests/, test_*.py, *.spec.ts...): shown, but not in ``findings``.
    test_findings: tuple[Finding, ...] = ()
    #: Files and folders left out, by reason (vendored, minified, generated, gitignored, excluded).
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: A few of them per reason, as paths.
    skipped_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        """Whether some file was not audited (did not parse or read) or some rule crashed."""
        return any(d.leaves_gap for d in self.diagnostics)

    @property
    def unaudited(self) -> tuple[str, ...]:
        """The files the audit could not look at (or not fully), each once."""
        return tuple(dict.fromkeys(d.path for d in self.diagnostics if d.leaves_gap))

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    def without_baseline(
        self, known: Collection[str], key: Callable[[list[Finding]], list[str]]
    ) -> AuditResult:
        """Drop findings whose key (computed over the whole list, e.g. fingerprints) is known."""
        keys = key(list(self.findings))
        kept = tuple(f for f, k in zip(self.findings, keys, strict=False) if k not in known)
        return replace(self, findings=kept, baselined=len(self.findings) - len(kept))

    def summary(self) -> dict[str, EvidenceValue]:
        """The counts every renderer shows, JSON-ready."""
        by_severity: dict[str, EvidenceValue] = {
            s.label: sum(1 for f in self.findings if f.severity is s) for s in reversed(Severity)
        }
        return {
            "findings": len(self.findings),
            "by_severity": by_severity,
            "suppressed": len(self.suppressed),
            "baselined": self.baselined,
            "diagnostics": len(self.diagnostics),
            "incomplete": self.incomplete,
            "unaudited_files": len(self.unaudited),
            "test_findings": len(self.test_findings),
            "skipped": dict(self.skipped),
            "files": self.files,
            "files_parsed": self.files_parsed,
            "lines": self.lines,
            "seconds": round(self.seconds, 3),
            "rules": len(self.rules),
        }
