"""How a scan rule declares itself: one decorator, validated at import.

Each rule lives in its own module under ``hmacguard/scan/rules/``. The module's docstring is the rule's
documentation (``hmacguard rules --explain ID``, and the rule section of docs/scan.md, generated from
it); it must say **How it is judged.**, **Thresholds and why.** and **What can make it wrong.** The
module defines one check, decorated with :func:`scan_rule`, which reads the :class:`ScanFacts` and
returns a finding or None. The decorator registers the rule in the shared catalogue
(:func:`hmacguard.findings.register_rule`, ``source="scan"``) and in :data:`SCAN_RULES`, which the
analysis runs in registration order (the order of ``hmacguard/scan/rules/__init__.py``).

``phases`` names the probe phases (:data:`hmacguard.scan.plan.PHASES`) whose measurements the rule
judges: when the budget left all of them untested, reports say the rule was not tested rather than
that it passed. ``needs_memory`` says the same about server-memory observation.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from hmacguard.errors import ConfigurationError
from hmacguard.findings import Category, Finding, Rule, Severity, register_rule
from hmacguard.scan.plan import PHASES
from hmacguard.scan.rules.facts import ScanFacts, Thresholds

__all__ = ["DOC_SECTIONS", "SCAN_RULES", "Check", "ScanRule", "scan_rule"]

Check = Callable[[ScanFacts, Thresholds], "Finding | None"]
C = TypeVar("C", bound=Check)

#: What every scan rule's docstring must say (in this order).
DOC_SECTIONS = ("**How it is judged.**", "**Thresholds and why.**", "**What can make it wrong.**")


@dataclass(frozen=True)
class ScanRule:
    """A registered scan rule: its catalogue entry, the phases it judges, and its check."""

    rule: Rule
    phases: tuple[str, ...]
    needs_memory: bool
    check: Check

    @property
    def id(self) -> str:
        return self.rule.id

    def run(self, facts: ScanFacts, thresholds: Thresholds) -> Finding | None:
        """Run the check; a finding it returns must carry this rule's id."""
        finding = self.check(facts, thresholds)
        if finding is not None and finding.rule != self.rule.id:
            raise ConfigurationError(f"scan rule {self.rule.id!r} returned a finding for {finding.rule!r}")
        return finding


_SCAN: dict[str, ScanRule] = {}
#: Every registered scan rule, by id, in registration order.
SCAN_RULES: Mapping[str, ScanRule] = MappingProxyType(_SCAN)


def _documentation(check: Callable[..., object], rule_id: str) -> str:
    module = sys.modules.get(check.__module__)
    doc = inspect.cleandoc(module.__doc__ or "") if module is not None else ""
    positions = [doc.find(section) for section in DOC_SECTIONS]
    if any(p < 0 for p in positions) or positions != sorted(positions):
        raise ConfigurationError(
            f"scan rule {rule_id!r}: its module docstring (its documentation) must contain, in order, "
            + ", ".join(DOC_SECTIONS)
        )
    return doc


def scan_rule(
    *,
    id: str,
    title: str,
    category: Category,
    severity: Severity,
    cwe: tuple[int, ...],
    remediation: str,
    phases: tuple[str, ...],
    needs_memory: bool = False,
    owasp: str = "API4:2023 Unrestricted Resource Consumption",
) -> Callable[[C], C]:
    """Register the decorated check as scan rule ``id``; its module docstring is its documentation."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise ConfigurationError(
            f"scan rule {id!r}: unknown phase(s) {unknown} (phases: {', '.join(PHASES)})"
        )

    def decorate(check: C) -> C:
        doc = _documentation(check, id)
        rule = register_rule(Rule(id, title, category, severity, cwe, remediation, owasp, doc, "scan"))
        existing = _SCAN.get(id)
        if existing is not None and existing.check is not check:
            raise ConfigurationError(f"scan rule {id!r} defined twice")
        _SCAN[id] = ScanRule(rule, tuple(phases), needs_memory, check)
        return check

    return decorate
