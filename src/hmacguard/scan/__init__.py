"""``hmacguard scan``: the black-box scanner for unenforced signatures, memory exhaustion, leaks and
missing rate limits.

>>> from hmacguard.scan import Budget, ScanTarget, run_scan            # doctest: +SKIP
>>> report = run_scan(ScanTarget("http://127.0.0.1:8000/webhook"), Budget(seconds=30))
>>> report.grade, [f.rule for f in report.findings]

Probes are raw HTTP/1.1 (:mod:`.wire`) with bodies generated on the fly (:mod:`.bodies`), planned
under byte and time budgets (:mod:`.plan`), grouped in families (:mod:`.probes`); server memory is
observed through :mod:`.observe`; :mod:`.analysis` turns measurements into findings, :mod:`.score`
into a score and grade. docs/scan.md describes the whole.
"""

from hmacguard.scan.analysis import Thresholds
from hmacguard.scan.config import DEFAULT_LADDER, Budget, ScanTarget
from hmacguard.scan.model import (
    SCHEMA_VERSION,
    BurstResult,
    EnforcementProbe,
    EnforcementResult,
    LimitEstimate,
    Measurement,
    ProbeKind,
    RetentionResult,
    ScanEvent,
    ScanReport,
    Stack,
    Untested,
    Variant,
    Verdict,
)
from hmacguard.scan.observe import LaunchedService, MemoryObserver, MetricsObserver, PidObserver, launch
from hmacguard.scan.plan import PHASES, PhaseSelection, ScanPlan, plan_scan
from hmacguard.scan.runner import run_scan

__all__ = [
    "DEFAULT_LADDER",
    "PHASES",
    "SCHEMA_VERSION",
    "Budget",
    "BurstResult",
    "EnforcementProbe",
    "EnforcementResult",
    "LaunchedService",
    "LimitEstimate",
    "Measurement",
    "MemoryObserver",
    "MetricsObserver",
    "PhaseSelection",
    "PidObserver",
    "ProbeKind",
    "RetentionResult",
    "ScanEvent",
    "ScanPlan",
    "ScanReport",
    "ScanTarget",
    "Stack",
    "Thresholds",
    "Untested",
    "Variant",
    "Verdict",
    "launch",
    "plan_scan",
    "run_scan",
]
