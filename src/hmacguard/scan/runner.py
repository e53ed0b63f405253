"""``run_scan``: preflight, the planned phases in order, then analysis, score and report.

The scan always ends with a report once the preflight connected: a target that stops answering,
resets, hangs or talks garbage ends the probing early (``target-unavailable``), and whatever the
budget left untested is listed. Only what makes a scan impossible from the start raises
(``TargetError``: malformed URL, not loopback, connection refused, TLS failure).
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict

from hmacguard.errors import TargetError
from hmacguard.scan.analysis import ScanFacts, Thresholds, analyse
from hmacguard.scan.config import Budget, ScanTarget
from hmacguard.scan.model import ScanEvent, ScanReport, Untested, Verdict
from hmacguard.scan.observe import MemoryObserver
from hmacguard.scan.plan import PhaseSelection, ScanPlan, plan_scan
from hmacguard.scan.probes.base import Prober, ScanStopped, size_text
from hmacguard.scan.probes.burst import run_burst
from hmacguard.scan.probes.enforcement import run_enforcement
from hmacguard.scan.probes.framing import run_chunked, run_content_types, run_expect, run_gzip
from hmacguard.scan.probes.held import run_held
from hmacguard.scan.probes.ladder import run_baseline, run_ladder
from hmacguard.scan.probes.limits import run_bisect
from hmacguard.scan.probes.retention import run_retention
from hmacguard.scan.rules import SCAN_RULE_IDS
from hmacguard.scan.rules.memory_held_uploads import too_little_to_judge
from hmacguard.scan.score import grade, score
from hmacguard.scan.stack import identify_stack
from hmacguard.scan.summary import limit_estimates
from hmacguard.scan.wire import Endpoint, Outcome

__all__ = ["endpoint_for", "run_scan"]


def endpoint_for(target: ScanTarget) -> Endpoint:
    parsed = target.parsed()
    return Endpoint(
        addresses=target.resolve(),
        port=parsed.port,
        authority=parsed.authority,
        tls=parsed.tls,
        server_hostname=parsed.host,
        insecure=target.insecure,
    )


def _phase_runner(name: str, thresholds: Thresholds) -> Callable[[Prober], object]:
    large = thresholds.large_body
    runners: dict[str, Callable[[Prober], object]] = {
        "baseline": run_baseline,
        "enforcement": run_enforcement,
        "ladder": run_ladder,
        "chunked": run_chunked,
        "content-type": lambda p: run_content_types(p, large),
        "expect": lambda p: run_expect(p, large),
        "gzip": run_gzip,
        "bisect": run_bisect,
        "retention": lambda p: setattr(p, "retention", run_retention(p)),
        "held-uploads": lambda p: setattr(p, "held", run_held(p)),
        "burst": run_burst,
    }
    return runners[name]


def run_scan(
    target: ScanTarget,
    budget: Budget | None = None,
    *,
    observer: MemoryObserver | None = None,
    progress: Callable[[ScanEvent], None] | None = None,
    thresholds: Thresholds | None = None,
    selection: PhaseSelection | None = None,
) -> ScanReport:
    """Scan ``target`` within ``budget``; ``observer`` adds memory measurements (amplification,
    retention); ``progress`` receives a :class:`ScanEvent` after every probe and phase; ``selection``
    runs some phases only (``--phase`` / ``--skip-phase``)."""
    budget = budget or Budget()
    thresholds = thresholds or Thresholds()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    endpoint = endpoint_for(target)
    plan = plan_scan(
        target, budget, memory=observer is not None, large_body=thresholds.large_body, selection=selection
    )
    prober = Prober(target, budget, endpoint, target.parsed().path, observer, progress)
    prober.steps = len(plan.phases)

    # Preflight: a GET for a random path connects (or fails the scan with exit 2) and identifies the stack.
    first = prober.get(f"/hmacguard-{secrets.token_hex(6)}", min(budget.request_timeout, 5.0))
    if first.outcome is Outcome.CONNECT_FAILED:
        raise TargetError(f"cannot connect to {target.url}: {first.error}")
    if not first.responded:
        prober.notes.append(f"the preflight GET got no HTTP answer ({first.outcome.value})")

    stopped: ScanStopped | None = None
    for index, phase in enumerate(plan.phases):
        if stopped is not None:
            prober.skip(phase.name, stopped.reason)
            continue
        if not phase.enabled:
            prober.skip(phase.name, phase.disabled_reason)
            continue
        prober.phase, prober.step = phase.name, index
        prober.reserved = plan.reserve_after(phase.name)
        prober.emit(f"{phase.name}: {phase.title}")
        try:
            _phase_runner(phase.name, thresholds)(prober)
        except ScanStopped as exc:
            stopped = exc
            # Cut short: what it measured stands, but it is not a pass (nor are those after it).
            prober.skip(phase.name, f"cut short: {exc.reason}")
    prober.phase, prober.step = "analysis", len(plan.phases)
    prober.emit("analysing")
    return _report(target, budget, plan, prober, thresholds, started_at, observer)


def _report(
    target: ScanTarget,
    budget: Budget,
    plan: ScanPlan,
    prober: Prober,
    thresholds: Thresholds,
    started_at: str,
    observer: MemoryObserver | None,
) -> ScanReport:
    enforcement = prober.enforcement
    exchanges = [
        *prober.side_exchanges,
        *(m.exchange for m in prober.measurements),
        *(p.exchange for p in (enforcement.probes if enforcement else ())),
    ]
    stack = identify_stack(exchanges)
    facts = ScanFacts(
        url=target.url,
        method=target.method,
        primary=prober.primary,
        measurements=tuple(prober.measurements),
        side_exchanges=tuple(prober.side_exchanges),
        retention=prober.retention,
        burst=prober.burst,
        unavailable_reason=prober.unavailable_reason,
        stack=stack,
        enforcement=enforcement,
        held=prober.held,
    )
    findings, diagnostics = analyse(facts, thresholds)
    value = score(findings)
    notes = list(prober.notes) + diagnostics
    buffered = max((m.exchange.uncertainty for m in prober.measurements), default=0)
    if buffered:
        notes.append(
            f"bodies up to about {size_text(buffered)} fit in the socket buffers between scanner and "
            "server, so below that size only the status code can show a refusal"
        )
    if observer is None:
        notes.append(
            "server memory was not observed: give --pid, --metrics or --launch to test "
            "amplification and retention"
        )
    else:
        big = [
            m.size for m in prober.measurements if m.rss_delta is not None and m.verdict is Verdict.ACCEPTED
        ]
        if not any(size >= thresholds.amplification_min_size for size in big):
            seen = (
                f"the largest accepted was {size_text(max(big))}, which bounds what one body can cost"
                if big
                else "none was accepted"
            )
            prober.skip(
                "memory-amplification",
                f"needs an accepted body of at least {size_text(thresholds.amplification_min_size)} ({seen})",
            )
    held = prober.held
    if held is not None and too_little_to_judge(held, thresholds):
        others = ", ".join(f"{k} x{v}" for k, v in held.answered.items()) or "none"
        prober.skip(
            "memory-held-uploads",
            f"{held.held} of {held.opened} uploads stayed open ({size_text(held.added_bytes)} sent after "
            f"the first piece; judged from {size_text(thresholds.held_min_bytes)}); the others: {others}",
        )
    untested = _dedupe(prober.untested)
    return ScanReport(
        url=target.url,
        method=target.method,
        scheme=target.scheme,
        signed=target.signed,
        findings=tuple(findings),
        score=value,
        grade=grade(value),
        stack=stack,
        measurements=tuple(prober.measurements),
        limits=tuple(limit_estimates(prober.measurements, budget.bisect_precision)),
        retention=prober.retention,
        burst=prober.burst,
        untested=tuple(untested),
        notes=tuple(notes),
        bytes_sent=prober.bytes_sent,
        requests=prober.requests,
        duration_s=time.monotonic() - prober.started,
        started_at=started_at,
        memory_source=observer.description if observer else None,
        budget={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(budget).items()},
        unavailable=prober.unavailable_reason is not None,
        rules=SCAN_RULE_IDS,
        enforcement=enforcement,
        held=prober.held,
    )


def _dedupe(items: list[Untested]) -> list[Untested]:
    return list(dict.fromkeys(items))
