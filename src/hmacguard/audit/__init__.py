"""``hmacguard audit``: find the flaw in source and configuration, before anything runs.

Python (stdlib ``ast``, data flow inside functions and through project functions), JavaScript and
TypeScript (tree-sitter), Django/Flask/Starlette/aiohttp settings, nginx (crossplane) and pinned
dependency versions. Every rule is one module whose docstring is its documentation
(``hmacguard rules --explain ID``)::

    from hmacguard.audit import audit
    result = audit(["src/"])
    for finding in result.findings:
        print(finding.location, finding.rule, finding.message)
"""

from __future__ import annotations

from hmacguard.audit import rules as _rules  # noqa: F401  (registers every rule)
from hmacguard.audit.engine import audit, discover
from hmacguard.audit.model import AuditResult, Diagnostic, DiagnosticKind
from hmacguard.audit.registry import AUDIT_RULES, AuditRule, Language

__all__ = [
    "AUDIT_RULES",
    "AuditResult",
    "AuditRule",
    "Diagnostic",
    "DiagnosticKind",
    "Language",
    "audit",
    "discover",
]
