"""``hmacguard scan``: one endpoint, or every signed operation of an OpenAPI spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Union

from hmacguard.commands.outcome import Outcome, exit_status, load_baseline
from hmacguard.findings import Severity
from hmacguard.report.terminal.scan import scan_progress
from hmacguard.scan import Budget, PhaseSelection, ScanPlan, ScanReport, ScanTarget, plan_scan, run_scan
from hmacguard.scan.history import save_scan
from hmacguard.scan.observe import check_sources, observation
from hmacguard.scan.openapi import OpenApiScan, scan_openapi
from hmacguard.scan.openapi_spec import load_openapi

__all__ = ["ScanResult", "plan", "scan"]

ScanResult = Union[ScanReport, OpenApiScan]  # noqa: UP007 (a runtime alias on 3.10)


def plan(
    target: ScanTarget,
    budget: Budget,
    *,
    pid: int | None,
    metrics: str | None,
    launch: str | None,
    selection: PhaseSelection | None = None,
) -> ScanPlan:
    """``--dry-run``: what the scan would send, nothing sent."""
    check_sources(pid=pid, metrics=metrics, command=launch)
    memory = any(x is not None for x in (pid, metrics, launch))
    return plan_scan(target, budget, memory=memory, selection=selection)


def scan(
    target: ScanTarget,
    budget: Budget,
    *,
    openapi: Path | None = None,
    base_url: str | None = None,
    scheme: str | None = None,
    pid: int | None = None,
    metrics: str | None = None,
    launch: str | None = None,
    baseline: Path | None = None,
    fail_on: Severity | None = None,
    fail_under: int | None = None,
    save: bool = False,
    history: Path | None = None,
    label: str | None = None,
    progress: bool = False,
    selection: PhaseSelection | None = None,
) -> Outcome[ScanResult]:
    """Scan ``target`` (or, with ``openapi``, each signed operation at ``base_url``, which ``target``
    then names). ``selection``: ``--phase`` / ``--skip-phase``.

    Without ``fail_on`` and ``fail_under`` any finding fails (``fail_on`` low). ``scheme`` forces one
    signature scheme on every OpenAPI operation (else each follows its signature header).
    """
    if fail_on is None and fail_under is None:
        fail_on = Severity.LOW
    check_sources(pid=pid, metrics=metrics, command=launch)
    known = load_baseline(baseline, "openapi-scan" if openapi is not None else "scan")
    spec = load_openapi(openapi) if openapi is not None else None
    addresses = target.resolve()
    with (
        observation(pid=pid, metrics=metrics, command=launch, host=addresses, port=target.parsed().port,
                    allow_remote=target.allow_remote) as observer,
        scan_progress(enabled=progress) as sink,
    ):  # fmt: skip
        if spec is None:
            result: ScanResult = run_scan(
                target, budget, observer=observer, progress=sink, selection=selection
            )
        else:
            result = scan_openapi(
                spec, str(base_url), budget=budget, secret=target.secret, scheme=scheme,
                headers=target.headers, observer=observer, progress=sink,
                allow_remote=target.allow_remote, insecure=target.insecure, selection=selection,
                probe_body=target.probe_body,
            )  # fmt: skip
    if known is not None:
        result = result.without_baseline(known)
    if save:
        for report in result.reports if isinstance(result, OpenApiScan) else (result,):
            number, path = save_scan(report, history, label=label)
            print(f"saved as scan {number} in {path}", file=sys.stderr)
    return Outcome(
        result,
        exit_status(
            (f.severity for f in result.findings), fail_on, score=result.score, fail_under=fail_under
        ),
    )
