"""How an audit rule declares itself: one decorator, validated at import.

Each rule lives in its own module. The module's docstring is the rule's documentation (shown by
``hmacguard rules --explain ID`` and copied into docs/rules.md), and the module defines one check
function decorated with :func:`audit_rule`. The decorator registers the rule in the shared
catalogue (:func:`hmacguard.findings.register_rule`, ``source="audit"``) and in the audit's own
table, which the engine reads to know which checks to run on which kind of file.

A rule also declares its *trigger*: words without which it cannot fire (a rule about
``compare_digest`` cannot fire in a file that never says ``compare_digest``). The engine skips
parsing files that contain no rule's trigger, which is most of a large tree; this changes speed,
never results.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from hmacguard.errors import ConfigurationError
from hmacguard.findings import Category, Finding, Rule, Severity, register_rule

__all__ = [
    "AUDIT_RULES",
    "AuditRule",
    "Language",
    "Trigger",
    "all_of",
    "any_of",
    "audit_rule",
    "matches",
]


class Language(str, enum.Enum):
    """The front end a rule's check receives: what kind of file it inspects."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"  # JavaScript and TypeScript (one tree-sitter front end)
    NGINX = "nginx"
    REQUIREMENTS = "requirements"  # requirements*.txt, lock files, pyproject.toml
    DEPLOYMENT = "deployment"  # Dockerfile, Procfile, compose files, start scripts


#: Decides from a file's raw text whether a rule could fire in it at all.
Trigger = Callable[[str], bool]


def any_of(*words: str) -> Trigger:
    """True when the text contains at least one of ``words`` (case-sensitive, as source is)."""
    if not words:
        raise ConfigurationError("any_of() needs at least one word")
    return lambda text: any(w in text for w in words)


def matches(pattern: str) -> Trigger:
    """True when the regular expression ``pattern`` matches somewhere in the text."""
    compiled = re.compile(pattern)
    return lambda text: compiled.search(text) is not None


def all_of(*triggers: Trigger) -> Trigger:
    """True when every trigger is."""
    return lambda text: all(t(text) for t in triggers)


def _always(text: str) -> bool:
    return True


CheckFn = Callable[[Any], Iterable[Finding]]
F = TypeVar("F", bound=CheckFn)


@dataclass(frozen=True)
class AuditRule:
    """A registered audit rule: its catalogue entry, the files it reads and its check."""

    rule: Rule
    language: Language
    trigger: Trigger
    check: CheckFn

    @property
    def id(self) -> str:
        return self.rule.id

    def run(self, context: Any) -> Iterator[Finding]:
        """Run the check; every finding it yields must carry this rule's id."""
        for finding in self.check(context):
            if finding.rule != self.rule.id:
                raise ConfigurationError(f"rule {self.rule.id!r} yielded a finding for {finding.rule!r}")
            yield finding


_AUDIT: dict[str, AuditRule] = {}
#: Every registered audit rule, by id, in registration order.
AUDIT_RULES: Mapping[str, AuditRule] = MappingProxyType(_AUDIT)


def audit_rule(
    *,
    id: str,
    title: str,
    language: Language,
    category: Category,
    severity: Severity,
    cwe: tuple[int, ...],
    remediation: str,
    trigger: Trigger | None = None,
    owasp: str = "API4:2023 Unrestricted Resource Consumption",
) -> Callable[[F], F]:
    """Register the decorated check as audit rule ``id``; its module docstring is its doc."""

    def decorate(check: F) -> F:
        module = sys.modules.get(check.__module__)
        doc = inspect.cleandoc(module.__doc__ or "") if module is not None else ""
        if not doc:
            raise ConfigurationError(f"rule {id!r}: its module needs a docstring (its documentation)")
        rule = register_rule(
            Rule(
                id=id,
                title=title,
                category=category,
                severity=severity,
                cwe=cwe,
                remediation=remediation,
                owasp=owasp,
                doc=doc,
                source="audit",
            )
        )
        existing = _AUDIT.get(id)
        if existing is not None and existing.check is not check:
            raise ConfigurationError(f"audit rule {id!r} defined twice")
        _AUDIT[id] = AuditRule(rule, language, trigger or _always, check)
        return check

    return decorate
