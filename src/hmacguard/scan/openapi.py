"""``hmacguard scan --openapi SPEC --base-url URL``: scan every signed operation an API describes.

An operation is scanned when it takes a request body *and* carries a signature:

- a security requirement (the operation's own ``security``, else the document's) naming a scheme of
  type ``apiKey`` ``in: header`` whose header name or description says signature or HMAC
  (``X-Hub-Signature-256``, ``Stripe-Signature``, ``X-Signature``; an ``X-API-Key`` is a key, not a
  signature, and is not scanned), or
- a header parameter (the path item's or the operation's, ``$ref`` resolved) whose name looks like
  a signature header.

The signature scheme follows from the header (GitHub, Stripe, Slack, Standard Webhooks; any other
header is the ``generic`` scheme with that header), unless ``x-hmacguard-scheme`` on the operation or
the security scheme names one, or the caller forces one. The overall budget is split evenly: each of
N operations gets 1/N of the bytes and of the seconds, so the whole scan stays inside what was given.

Declared limits are read from the body's schema (``maxLength`` of a string or binary body) or from an
``x-max-body-size`` extension (bytes, or a size like ``"1MiB"``) on the operation, the request body or
a media type; the declared size is added to that operation's ladder so the scan tests it exactly, and
:class:`LimitComparison` says whether the server enforces it. Swagger 2.0 (``securityDefinitions``,
``in: body`` parameters, ``consumes``) is read too. ``--base-url`` replaces the spec's ``servers``,
which usually name production. YAML specs need PyYAML (``pip install 'hmacguard[openapi]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from hmacguard.errors import ConfigurationError
from hmacguard.findings import EvidenceValue, Finding, severity_summary
from hmacguard.scan.analysis import Thresholds
from hmacguard.scan.config import Budget, KiB, ScanTarget
from hmacguard.scan.model import LimitEstimate, ScanEvent, ScanReport
from hmacguard.scan.observe import MemoryObserver
from hmacguard.scan.openapi_spec import (
    DeclaredLimit,
    OpenApiSpec,
    Operation,
    SkippedOperation,
    discover_signed_operations,
    load_openapi,
    survey_operations,
)
from hmacguard.scan.plan import PhaseSelection
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules import SCAN_RULE_IDS
from hmacguard.scan.runner import run_scan

__all__ = [
    "DeclaredLimit",
    "LimitComparison",
    "OpenApiScan",
    "OpenApiSpec",
    "Operation",
    "SkippedOperation",
    "compare_limit",
    "discover_signed_operations",
    "load_openapi",
    "scan_openapi",
    "split_budget",
    "survey_operations",
]


@dataclass(frozen=True)
class LimitComparison:
    """What the spec declares against what the server did.

    ``verdict``: ``enforced``, ``not-enforced`` (the server took more than declared), ``stricter``
    (it refused less than declared: legitimate senders get refused), ``undeclared``, or
    ``unconfirmed`` (nothing above the declared size was accepted nor refused).
    """

    operation: str
    declared: DeclaredLimit | None
    largest_accepted: int | None
    smallest_refused: int | None
    verdict: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "declared": None
            if self.declared is None
            else {"bytes": self.declared.bytes, "where": self.declared.where},
            "largest_accepted": self.largest_accepted,
            "smallest_refused": self.smallest_refused,
            "verdict": self.verdict,
            "message": self.message,
        }


def _observed(limits: Sequence[LimitEstimate]) -> tuple[int | None, int | None]:
    """(largest accepted, smallest refused) of the loosest variant an attacker could pick."""
    sized = [lim for lim in limits if lim.accepted is not None]
    if not sized:
        return None, None
    accepted = max(lim.accepted or 0 for lim in sized)
    if any(lim.refused is None for lim in sized):
        return accepted, None
    return accepted, max(lim.refused or 0 for lim in sized)


def compare_limit(operation: Operation, report: ScanReport, precision: float = 0.10) -> LimitComparison:
    accepted, refused = _observed(report.limits)
    declared = operation.declared_limit

    def make(verdict: str, message: str) -> LimitComparison:
        return LimitComparison(operation.key, declared, accepted, refused, verdict, message)

    if declared is None:
        seen = "no refusal seen" if refused is None else f"refused from {size_text(refused)}"
        return make("undeclared", f"the spec declares no body size; {seen}")
    if accepted is None:
        return make("unconfirmed", "no body size was accepted, so the declared limit cannot be checked")
    d, said = declared.bytes, f"declares {size_text(declared.bytes)} ({declared.where})"
    if accepted > d * (1 + precision):
        return make("not-enforced", f"{said}; the server accepted {size_text(accepted)}")
    if refused is not None and refused < d * (1 - precision):
        return make("stricter", f"{said}; the server refused {size_text(refused)}")
    if refused is None:
        return make("unconfirmed", f"{said}; the scan accepted {size_text(accepted)} and refused nothing")
    return make("enforced", f"{said}; refused from {size_text(refused)}")


@dataclass(frozen=True)
class OpenApiScan:
    """The scan of every signed operation: one :class:`ScanReport` each, in operation order."""

    kind: ClassVar[str] = "openapi-scan"
    rules: ClassVar[tuple[str, ...]] = SCAN_RULE_IDS

    spec: OpenApiSpec
    base_url: str
    operations: tuple[Operation, ...]
    skipped: tuple[SkippedOperation, ...]
    reports: tuple[ScanReport, ...]
    comparisons: tuple[LimitComparison, ...]
    budget_per_operation: Mapping[str, Any]

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.reports for f in r.findings)

    @property
    def score(self) -> int:
        """An OpenAPI scan scores as its weakest operation."""
        return min((r.score for r in self.reports), default=100)

    def summary(self) -> dict[str, EvidenceValue]:
        return {**severity_summary(self.findings), "score": self.score, "operations": len(self.reports)}

    def without_baseline(self, known: Collection[str]) -> OpenApiScan:
        """Each operation's report without the findings the baseline has (see ScanReport)."""
        return replace(self, reports=tuple(r.without_baseline(known) for r in self.reports))

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": {"path": self.spec.path, "title": self.spec.title},
            "base_url": self.base_url,
            "operations": [
                {
                    "method": op.method,
                    "path": op.path,
                    "operation_id": op.operation_id,
                    "signature_header": op.signature_header,
                    "signature_source": op.signature_source,
                    "scheme": op.scheme,
                    "line": op.line,
                    "url": r.url,
                    "report": r.to_dict(),
                }
                for op, r in zip(self.operations, self.reports, strict=True)
            ],
            "skipped": [vars(s) for s in self.skipped],
            "limit_comparisons": [c.to_dict() for c in self.comparisons],
            "budget_per_operation": dict(self.budget_per_operation),
        }


def split_budget(budget: Budget, parts: int) -> Budget:
    """1/``parts`` of the bytes and seconds (the rest of the budget's shape unchanged)."""
    if parts < 1:
        raise ConfigurationError("nothing to split the budget between")
    share = budget.bytes // parts
    if share < 4 * KiB:
        raise ConfigurationError(f"--budget-bytes is too small for {parts} operations (4 KiB each at least)")
    return replace(budget, bytes=share, seconds=budget.seconds / parts)


def scan_openapi(
    spec: OpenApiSpec | Mapping[str, Any],
    base_url: str,
    *,
    budget: Budget | None = None,
    secret: str | None = None,
    scheme: str | None = None,
    headers: Mapping[str, str] | None = None,
    observer: MemoryObserver | None = None,
    progress: Callable[[ScanEvent], None] | None = None,
    thresholds: Thresholds | None = None,
    allow_remote: bool = False,
    insecure: bool = False,
    selection: PhaseSelection | None = None,
    probe_body: bytes | None = None,
) -> OpenApiScan:
    """Scan each signed operation of ``spec`` at ``base_url`` with an equal share of ``budget``.

    ``scheme`` forces one signature scheme for every operation (else each follows its header).
    Raises ConfigurationError when the spec has no signed operation with a body; every target is
    validated (URL, loopback) before the first byte is sent.
    """
    doc = spec if isinstance(spec, OpenApiSpec) else OpenApiSpec(spec)
    operations, skipped = survey_operations(doc)
    if not operations:
        raise ConfigurationError(f"{doc.title}: no operation takes a request body and carries a signature")
    share = split_budget(budget or Budget(), len(operations))
    targets = []
    for op in operations:
        name = scheme or op.scheme
        targets.append(
            ScanTarget(
                op.url(base_url),
                scheme=name,
                secret=secret,
                method=op.method,
                content_type=op.content_types[0] if op.content_types and "/" in op.content_types[0] else None,
                headers=dict(headers or {}),
                generic_header=op.signature_header if name == "generic" else "X-Signature",
                allow_remote=allow_remote,
                insecure=insecure,
                probe_body=probe_body,
            )
        )
    reports, comparisons = [], []
    for op, target in zip(operations, targets, strict=True):
        op_budget = share
        if op.declared_limit and op.declared_limit.bytes <= share.max_size:
            # Test the declared size itself: bisection alone might never land on it.
            op_budget = replace(share, ladder=(*share.ladder, op.declared_limit.bytes))
        report = run_scan(
            target, op_budget, observer=observer, progress=progress, thresholds=thresholds,
            selection=selection,
        )  # fmt: skip
        reports.append(report)
        comparisons.append(compare_limit(op, report, share.bisect_precision))
    budget_dict = {"bytes": share.bytes, "seconds": share.seconds, "operations": len(operations)}
    return OpenApiScan(
        doc, base_url, tuple(operations), tuple(skipped), tuple(reports), tuple(comparisons), budget_dict
    )
