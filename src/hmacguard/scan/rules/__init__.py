"""The scanner's rules: one module per rule, each registered by :func:`scan_rule`.

Importing this package registers every rule, in the order reports list them. Adding a rule:

1. write ``hmacguard/scan/rules/<rule_id>.py``: a docstring with **How it is judged.**,
   **Thresholds and why.** and **What can make it wrong.** (it is the rule's documentation), and one
   check decorated with :func:`scan_rule` that reads :class:`ScanFacts` and returns a finding or None
   (a rule of the enforcement phase uses :func:`~hmacguard.scan.rules.enforcement_rule.enforcement_rule`,
   which fills in what the four share and hands the check the phase's probes);
2. import it below: its place there is its place in reports;
3. if it judges a new probe phase, add the phase to :mod:`hmacguard.scan.plan` (its name in
   ``PHASES``, its cost in :func:`plan_scan`), its probes as a module of :mod:`hmacguard.scan.probes`,
   and its runner in :mod:`hmacguard.scan.runner`; what the probes measure reaches the rules through
   :class:`ScanFacts`;
4. regenerate the docs (``hmacguard rules --format markdown --source scan``: see docs/scan.md) and add
   a case to tests/scan/test_analysis.py.
"""

from __future__ import annotations

# isort: off
# The import order is the registration order, which is the order reports list the rules in.
from hmacguard.scan.rules import signature_not_enforced  # noqa: F401
from hmacguard.scan.rules import signature_bypass_path  # noqa: F401
from hmacguard.scan.rules import stale_timestamp_accepted  # noqa: F401
from hmacguard.scan.rules import replay_accepted  # noqa: F401
from hmacguard.scan.rules import unbounded_body  # noqa: F401
from hmacguard.scan.rules import high_limit  # noqa: F401
from hmacguard.scan.rules import chunked_bypass  # noqa: F401
from hmacguard.scan.rules import content_type_bypass  # noqa: F401
from hmacguard.scan.rules import late_rejection  # noqa: F401
from hmacguard.scan.rules import memory_amplification  # noqa: F401
from hmacguard.scan.rules import memory_retention  # noqa: F401
from hmacguard.scan.rules import memory_held_uploads  # noqa: F401
from hmacguard.scan.rules import no_rate_limit  # noqa: F401
from hmacguard.scan.rules import degradation  # noqa: F401
from hmacguard.scan.rules import target_unavailable  # noqa: F401

# isort: on
from hmacguard.scan.rules.facts import ScanFacts, Thresholds
from hmacguard.scan.rules.registry import SCAN_RULES, ScanRule, scan_rule

__all__ = ["SCAN_RULES", "SCAN_RULE_IDS", "ScanFacts", "ScanRule", "Thresholds", "scan_rule"]

#: The scanner's rule ids, in the order reports list them.
SCAN_RULE_IDS: tuple[str, ...] = tuple(SCAN_RULES)
