"""``hmacguard leaks`` for a human: the lines that keep memory, worst first, with their source."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from hmacguard.leaks import LeakReport, format_bytes
from hmacguard.leaks.frames import display_path

__all__ = ["render_leaks"]


def _responses(report: LeakReport) -> str:
    return ", ".join(f"{count}× {status}" for status, count in report.workload.items()) or "none"


def render_leaks(report: LeakReport, console: Console | None = None) -> None:
    console = console or Console()
    unit = report.unit
    speed = report.requests / report.run_seconds if report.run_seconds else 0.0
    console.print(
        f"[bold]{escape(report.target)}[/bold]: {report.requests} {unit}s measured after "
        f"{report.warmup} warm-up, {report.rounds} rounds"
        + (f", body {format_bytes(report.body_size)}" if report.body_size is not None else "")
    )
    console.print(
        f"  responses: {escape(_responses(report))}; {speed:,.0f} {unit}s/s, "
        f"{report.total_seconds:.1f} s in all"
    )
    for warning in report.warnings:
        console.print(f"  [yellow]warning:[/yellow] {escape(warning)}")
    if not report.sites:
        console.print(
            f"[green]No application line keeps {format_bytes(report.min_bytes)} or more per {unit}.[/green]"
        )
    for rank, site in enumerate(report.sites, 1):
        trend = (
            "[bold red]growing[/bold red]"
            if site.trend == "growing"
            else f"[yellow]plateau[/yellow] at {format_bytes(site.retained_bytes)}"
        )
        console.print(
            f"\n{rank:>2}. {trend}  [bold]{format_bytes(site.bytes_per_request)}[/bold] and "
            f"{site.objects_per_request:.1f} objects per {unit}"
        )
        console.print(f"    [cyan]{escape(site.where)}[/cyan]", overflow="fold")
        if site.source:
            console.print(f"    │ {escape(site.source)}", overflow="fold")
        if site.how == "stored" and site.allocated_at:
            origins = ", ".join(f"{display_path(s.path)}:{s.line}" for s, _ in site.allocated_at)
            console.print(f"    [dim]stored here; allocated at {escape(origins)}[/dim]", overflow="fold")
    if report.sites:
        console.print()
        if report.growing:
            console.print(
                f"[bold red]{format_bytes(report.bytes_per_request)} per {unit} kept by application "
                f"code[/bold red]: {len(report.growing)} line(s) still growing."
            )
        if report.plateaus:
            console.print(f"{len(report.plateaus)} bounded cache(s): they grew, then held (not a leak).")
    if report.outside_bytes_per_request >= report.min_bytes:
        top = ", ".join(f"{display_path(s.path)}:{s.line}" for s, _ in report.outside_top[:3])
        console.print(
            f"[dim]Outside application frames: {format_bytes(report.outside_bytes_per_request)} per "
            f"{unit} ({escape(top)}).[/dim]"
        )
