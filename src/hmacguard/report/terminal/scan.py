"""``hmacguard scan`` for a human: score and grade, findings with evidence and the fix for the stack,
how the signature was enforced, the limits found, memory, the burst, and what was left untested;
``scan --openapi``'s operations, spec against server, then each scan. Plus the progress bar and the
plan ``--dry-run`` prints."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hmacguard.findings import Severity
from hmacguard.scan import EnforcementProbe, ProbeKind, ScanEvent, ScanPlan, ScanReport
from hmacguard.scan.openapi import OpenApiScan
from hmacguard.scan.probes.base import size_text

__all__ = ["render_openapi_scan", "render_plan", "render_scan", "scan_progress"]

_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_GRADE_STYLE = {"A": "bold green", "B": "green", "C": "yellow", "D": "red", "F": "bold red"}


def _size(n: int | None) -> str:
    return "—" if n is None else size_text(n)


def _tally(counts: Mapping[str, int]) -> str:
    """Outcomes and how often each came: ``200×3, 429×17``."""
    return ", ".join(f"{k}×{v}" for k, v in counts.items())


def render_scan(report: ScanReport, console: Console | None = None, *, verbose: bool = False) -> None:
    console = console or Console()
    signing = "signed" if report.signed else "forged signatures"
    console.print(
        f"[bold]hmacguard scan[/bold]  {report.method} {escape(report.url)}  "
        f"[dim]({escape(report.scheme)}, {signing})[/dim]"
    )
    clues = f" [dim]({escape(', '.join(report.stack.clues))})[/dim]" if report.stack.clues else ""
    console.print(f"Stack: {escape(report.stack.label)}{clues}")
    style = _GRADE_STYLE.get(report.grade, "bold")
    counts = _severity_counts(report)
    console.print(
        f"[{style}]Score {report.score}/100  Grade {report.grade}[/{style}]   "
        f"{len(report.findings)} finding(s){': ' + counts if counts else ''}   "
        f"[dim]{report.requests} requests, {size_text(report.bytes_sent)} sent in "
        f"{report.duration_s:.1f}s[/dim]"
    )
    if report.findings:
        console.print()
    for f in report.findings:
        sev = _SEVERITY_STYLE.get(f.severity, "")
        console.print(
            f"[{sev}]{f.severity.label.upper():>8}[/{sev}]  [bold]{f.rule}[/bold]  {escape(f.title)}  "
            f"[dim]{f.category.value}, {', '.join(f'CWE-{c}' for c in f.cwe)}[/dim]"
        )
        console.print(f"          {escape(f.message)}", overflow="fold")
        console.print(f"          [dim]evidence:[/dim] {escape(f.evidence.summary)}", overflow="fold")
        console.print(f"          [dim]fix:[/dim] {escape(f.remediation)}", overflow="fold")
        if f.stack:
            console.print(f"          [green]{escape(f.stack)}[/green]", overflow="fold")
    if not report.findings:
        console.print("\n[bold green]No findings.[/bold green]")
    _enforcement(report, console)
    _limits(report, console)
    _memory(report, console)
    if verbose:
        _enforcement_probes(report, console)
        _probes(report, console)
    if report.untested:
        console.print("\n[bold]Untested[/bold]")
        for u in report.untested:
            console.print(f"  - {escape(u.what)}: [dim]{escape(u.reason)}[/dim]", overflow="fold")
    if report.notes:
        console.print("\n[bold]Notes[/bold]")
        for note in report.notes:
            console.print(f"  - [dim]{escape(note)}[/dim]", overflow="fold")


def _severity_counts(report: ScanReport) -> str:
    counts: dict[Severity, int] = {}
    for f in report.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return ", ".join(f"{n} {s.label}" for s, n in sorted(counts.items(), reverse=True))


def _answer(p: EnforcementProbe) -> str:
    got = str(p.exchange.status) if p.exchange.responded else p.exchange.outcome.value
    return f"[red]{got}[/red]" if p.accepted else got


def _enforcement(report: ScanReport, console: Console) -> None:
    e = report.enforcement
    if e is None:
        return
    parts = [f"{p.kind.value} {_answer(p)}" for p in e.of(ProbeKind.UNSIGNED, ProbeKind.FORGED)]
    spellings = e.of(ProbeKind.SPELLING)
    if spellings:
        taken = [p.target for p in spellings if p.accepted]
        parts.append(f"{len(spellings)} other spellings: " + (
            f"[red]{escape(', '.join(taken))} accepted[/red]" if taken else "none accepted"
        ))  # fmt: skip
    siblings = e.of(ProbeKind.SIBLING)
    if siblings:
        parts.append(f"a random path {_answer(siblings[0])}")
    parts += [
        f"{p.kind.value} {_answer(p)}"
        for p in e.of(ProbeKind.SIGNED, ProbeKind.REPLAY, ProbeKind.REPLAY_RESPELLED)
    ]
    parts += [f"{p.kind.value} {_answer(p)}" for p in e.of(ProbeKind.STALE_PAST, ProbeKind.STALE_FUTURE)]
    body = "test event" if e.body == "test-event" else "--probe-body"
    console.print()
    head = f"[bold]Signature[/bold] [dim]({body}, {escape(e.content_type)})[/dim]  "
    console.print(head + "; ".join(parts), overflow="fold")


def _enforcement_probes(report: ScanReport, console: Console) -> None:
    if report.enforcement is None:
        return
    table = Table(title="Enforcement probes", title_justify="left", box=None, pad_edge=False)
    for col in ("kind", "request target", "answer", "time"):
        table.add_column(col)
    for p in report.enforcement.probes:
        kind = p.kind.value + (f" ({p.spelling})" if p.spelling else "")
        table.add_row(kind, escape(p.target), _answer(p), f"{p.exchange.total_s:.3f}s")
    console.print()
    console.print(table)


def _limits(report: ScanReport, console: Console) -> None:
    if not report.limits:
        return
    table = Table(title="Body limits by variant", title_justify="left", box=None, pad_edge=False)
    for col in ("variant", "largest accepted", "smallest refused", "refused by", "bisected"):
        table.add_column(col)
    for limit in report.limits:
        table.add_row(
            limit.variant.label,
            _size(limit.accepted),
            _size(limit.refused) if limit.refused else "[red]none[/red]",
            limit.refusal.value if limit.refusal else "—",
            f"{limit.probes} probe(s)" + (", within precision" if limit.precise else "")
            if limit.probes else "—",
        )  # fmt: skip
    console.print()
    console.print(table)


def _memory(report: ScanReport, console: Console) -> None:
    console.print()
    if report.memory_source is None:
        console.print("[bold]Memory[/bold] [dim]not observed[/dim]")
    else:
        console.print(f"[bold]Memory[/bold] [dim]({escape(report.memory_source)})[/dim]")
        grown = [m for m in report.measurements if m.rss_delta is not None and m.size >= 1 << 20]
        if grown:
            biggest = max(grown, key=lambda m: m.size)
            console.print(
                f"  peak growth {_size(biggest.rss_delta)} while handling {_size(biggest.size)} "
                f"({biggest.variant.label}, {biggest.verdict.value})"
            )
        r = report.retention
        if r is not None:
            console.print(
                f"  retention: {size_text(r.bytes_per_request)}/request over {r.answered} requests of "
                f"{size_text(r.size)} ({r.bytes_per_request / r.size:.0%} of the body; later rounds "
                f"{size_text(r.late_bytes_per_request)}/request)"
            )
        h = report.held
        if h is not None:
            others = f" (the others: {_tally(h.answered)})" if h.answered else ""
            console.print(
                f"  held uploads: {h.held} of {h.opened} open at once, {size_text(h.held_bytes)} sent "
                f"and unfinished: RSS {_size(h.growth)}, {h.growth_per_added_byte:.2f} "
                f"per byte after the first piece{others}"
            )
    b = report.burst
    if b is not None:
        console.print(
            f"[bold]Burst[/bold] {b.requests} × {size_text(b.size)}, {b.concurrency} at a time, "
            f"{b.duration_s:.2f}s: {_tally(b.statuses)}"
            + (f"; throttled {b.throttled}" if b.throttled else "")
            + (f"; headers {', '.join(b.rate_limit_headers)}" if b.rate_limit_headers else "")
        )


def _probes(report: ScanReport, console: Console) -> None:
    if not report.measurements:
        return
    table = Table(title="Probes", title_justify="left", box=None, pad_edge=False)
    for col in ("phase", "variant", "size", "result", "read before answer", "time", "RSS Δ"):
        table.add_column(col)
    for m in report.measurements:
        ex = m.exchange
        got = str(ex.status) if ex.status is not None else ex.outcome.value
        read = m.accepted_before_answer
        table.add_row(
            m.phase, m.variant.label, _size(m.size), f"{m.verdict.value} ({got})",
            "—" if read is None else f"≤ {size_text(read[1])}", f"{ex.total_s:.3f}s", _size(m.rss_delta),
        )  # fmt: skip
    console.print()
    console.print(table)


def render_plan(plan: ScanPlan, console: Console | None = None) -> None:
    """What ``--dry-run`` prints: the phases, their worst-case cost, and what would not fit."""
    console = console or Console()
    b = plan.budget
    console.print(
        f"[bold]Scan plan[/bold] for {escape(plan.url)}: budget {size_text(b.bytes)}, {b.seconds:g}s, "
        f"{b.request_timeout:g}s per request; ladder {', '.join(size_text(s) for s in b.ladder)}"
    )
    table = Table(box=None, pad_edge=False)
    for col in ("#", "phase", "what", "worst case", "adapts"):
        table.add_column(col, overflow="fold")
    for i, phase in enumerate(plan.phases, 1):
        cost = size_text(phase.worst_bytes) if phase.enabled else f"[dim]off: {phase.disabled_reason}[/dim]"
        table.add_row(str(i), phase.name, escape(phase.title), cost, escape(phase.adapts))
    console.print(table)
    console.print(
        f"Worst case (nothing refused): {size_text(plan.worst_bytes)} against {size_text(b.bytes)}."
    )
    if plan.untested_worst_case:
        console.print("[bold]Would be left untested in the worst case[/bold]")
        for u in plan.untested_worst_case:
            console.print(f"  - {escape(u.what)}: [dim]{escape(u.reason)}[/dim]")
    console.print("[dim]Nothing was sent (--dry-run).[/dim]")


class _ProgressSink:
    """Turns ScanEvents into a rich progress bar (one step per phase)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=1, sent="")

    def __call__(self, event: ScanEvent) -> None:
        self.progress.update(
            self.task,
            total=max(1, event.steps),
            completed=event.step,
            description=f"[bold]{event.phase}[/bold] {escape(event.message)}"[:120],
            sent=f"{size_text(event.bytes_sent)} / {size_text(event.budget_bytes)}",
        )


@contextmanager
def scan_progress(
    console: Console | None = None, *, enabled: bool = True
) -> Iterator[Callable[[ScanEvent], None] | None]:
    """A ``progress`` callback for run_scan drawing a bar on ``console`` (stderr by default);
    yields None when disabled, which run_scan accepts."""
    if not enabled:
        yield None
        return
    console = console or Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[sent]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _ProgressSink(progress)


_VERDICT_STYLE = {"enforced": "green", "not-enforced": "bold red", "stricter": "yellow"}


def render_openapi_scan(
    result: OpenApiScan, console: Console | None = None, *, verbose: bool = False
) -> None:
    console = console or Console()
    share = result.budget_per_operation
    console.print(
        f"[bold]hmacguard scan --openapi[/bold]  {escape(result.spec.title)} at {escape(result.base_url)}  "
        f"[dim]({len(result.operations)} signed operation(s), each {size_text(share['bytes'])} and "
        f"{share['seconds']:.0f}s)[/dim]"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("operation", "signature", "grade", "findings", "declared", "spec vs server"):
        table.add_column(column)
    for op, report, comparison in zip(result.operations, result.reports, result.comparisons, strict=True):
        style = _VERDICT_STYLE.get(comparison.verdict, "dim")
        table.add_row(
            escape(op.key),
            escape(f"{op.signature_header} ({op.scheme})"),
            f"{report.grade} ({report.score})",
            str(len(report.findings)),
            size_text(op.declared_limit.bytes) if op.declared_limit else "—",
            f"[{style}]{comparison.verdict}[/{style}]: {escape(comparison.message)}",
        )
    console.print(table)
    for skipped in result.skipped:
        console.print(
            f"  [dim]not scanned: {escape(skipped.method)} {escape(skipped.path)} "
            f"({escape(skipped.reason)})[/dim]"
        )
    for report in result.reports:
        console.rule()
        render_scan(report, console, verbose=verbose)
