"""``make demo``: the main job on the embedded default, the lab.

1. What a 64 MiB body does to a vulnerable and a correct server's memory (the lab's ground truth).
2. ``hmacguard scan`` of the vulnerable target and of the same endpoint behind the guard, each with
   its server's memory observed: the scan finds the flaw, the guard fixes it, the same scan proves it.
3. One self-contained HTML report of both scans, whose path is printed last.

A command: it sits above the detectors and the reports, so it may use the lab, the scanner and both.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hmacguard.lab import run_target
from hmacguard.lab.measure import MiB, measure_memory
from hmacguard.report.html import render_scan_html
from hmacguard.report.terminal.lab import memory_table
from hmacguard.report.terminal.scan import render_scan
from hmacguard.scan import Budget, PidObserver, ScanReport, ScanTarget, run_scan

__all__ = ["MEMORY_TARGETS", "SCAN_TARGETS", "run_demo", "scan_targets"]

MEMORY_TARGETS = ("flask-get-data", "flask-streaming-capped")
#: The vulnerable endpoint, and the same endpoint fixed with hmacguard's Flask extension.
SCAN_TARGETS = ("flask-get-data", "flask-guarded")


def scan_targets(names: Sequence[str], budget: Budget | None = None) -> list[ScanReport]:
    """A default scan of each lab target, its server's process tree observed by pid."""
    reports = []
    for name in names:
        with run_target(name) as target:
            scan = ScanTarget(target.url, scheme=target.scheme)
            reports.append(run_scan(scan, budget or Budget(), observer=PidObserver(target.pid)))
    return reports


def run_demo(console: Console | None = None, *, html: Path | None = None) -> Path:
    """Run the demo; return the path of the HTML report it wrote."""
    console = console or Console()
    console.rule("1. The lab: what a large body does to a server's memory")
    size = 64 * MiB
    console.print(memory_table(measure_memory(MEMORY_TARGETS, size), size))
    console.rule("2. hmacguard scan: the vulnerable endpoint, then the same endpoint behind the guard")
    reports = scan_targets(SCAN_TARGETS)
    for report in reports:
        render_scan(report, console)
        console.print()
    summary = ", ".join(f"{n}: {r.grade} ({r.score}/100)" for n, r in zip(SCAN_TARGETS, reports, strict=True))
    console.print(f"[bold]Grades[/bold]  {summary}")
    path = html or Path("reports") / "demo-scan.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_scan_html(reports, title="hmacguard demo: before and after the guard"), "utf-8")
    console.rule("3. The HTML report")
    print(f"HTML report: {path.resolve()}", file=sys.stdout, flush=True)
    return path
