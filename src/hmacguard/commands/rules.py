"""``hmacguard rules``: the catalogue of every detector's rules."""

from __future__ import annotations

from hmacguard.findings import RULES, Rule, get_rule

__all__ = ["SOURCES", "catalogue", "explain"]


#: The detectors, in the order ``hmacguard rules`` lists their rules.
SOURCES = ("scan", "audit", "leaks")


def _load() -> None:
    """Importing each detector registers its rules."""
    import hmacguard.audit
    import hmacguard.leaks.rule
    import hmacguard.scan.rules  # noqa: F401


def catalogue(source: str | None = None) -> list[Rule]:
    """Every registered rule (only ``source``'s: ``scan``, ``audit`` or ``leaks``), each detector's in
    the order it registers them."""
    _load()
    rules = [r for r in RULES.values() if source is None or r.source == source]
    return sorted(rules, key=lambda r: SOURCES.index(r.source) if r.source in SOURCES else len(SOURCES))


def explain(rule_id: str) -> Rule:
    """One rule, by id (ConfigurationError naming it when unknown)."""
    _load()
    return get_rule(rule_id)
