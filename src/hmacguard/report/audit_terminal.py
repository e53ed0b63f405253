"""The audit's terminal view: findings grouped by file, worst first, then what the run skipped."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hmacguard.audit.model import AuditResult
from hmacguard.findings import Finding, Severity

__all__ = ["render_audit_terminal"]

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _finding(console: Console, finding: Finding) -> None:
    loc = finding.location
    where = f"{loc.line}:{loc.column}" if loc.column else f"{loc.line}"
    head = Text.assemble(
        ("  ", ""),
        (f"{finding.severity.label.upper():<8}", _STYLE[finding.severity]),
        (f" {where:<8} ", "bold"),
        (finding.rule, "magenta"),
        (f"  [{finding.confidence} confidence]" if finding.confidence != "high" else "", "dim"),
    )
    console.print(head)
    console.print(Text(f"      {finding.message}"))
    if loc.snippet:
        console.print(Text(f"      │ {loc.snippet}", style="dim"))
    console.print(Text(f"      fix: {finding.stack or finding.remediation}", style="green"))


def render_audit_terminal(result: AuditResult, console: Console | None = None) -> None:
    """Print ``result`` for a person reading a terminal."""
    console = console or Console(highlight=False)
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in result.findings:
        by_file[finding.location.path or "<unknown>"].append(finding)
    for path in sorted(by_file, key=lambda p: (-max(f.severity for f in by_file[p]), p)):
        console.print(Text(path, style="bold underline"))
        for finding in by_file[path]:
            _finding(console, finding)
        console.print()
    if result.diagnostics:
        console.print(Text("Not audited or incomplete:", style="bold"))
        for d in result.diagnostics:
            where = f"{d.path}:{d.line}" if d.line else d.path
            rule = f" [{d.rule}]" if d.rule else ""
            console.print(f"  [dim]{d.kind.value}[/dim] {escape(where)}{escape(rule)}: {escape(d.message)}")
        console.print()
    if result.test_findings:
        console.print(
            Text(
                f"{len(result.test_findings)} finding(s) in test code, not counted "
                "(--include-tests counts them):",
                style="bold",
            )
        )
        for f in result.test_findings:
            console.print(f"  [dim]{escape(f.location.path or '')}:{f.location.line}[/dim] {escape(f.rule)}")
        console.print()
    if result.skipped:
        parts = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items())
        console.print(Text(f"Skipped: {parts} (--include-vendored, --exclude)", style="dim"))
    if result.incomplete:
        console.print(
            Text(
                f"INCOMPLETE: {len(result.unaudited)} file(s) could not be audited (see above); "
                "a clean result does not cover them.",
                style="bold yellow",
            )
        )
    counts = ", ".join(
        f"{n} {s.label}"
        for s in reversed(Severity)
        if (n := sum(1 for f in result.findings if f.severity is s))
    )
    total = len(result.findings)
    summary = Text.assemble(
        (f"{total} finding{'s' if total != 1 else ''}", "bold red" if total else "bold green"),
        (f" ({counts})" if counts else "", ""),
        (f"; {len(result.suppressed)} suppressed inline" if result.suppressed else "", ""),
        (f"; {result.baselined} in the baseline" if result.baselined else "", ""),
        (
            f" — {result.files} files, {result.lines} lines, {result.files_parsed} analysed, "
            f"{len(result.rules)} rules, {result.seconds:.2f}s",
            "dim",
        ),
    )
    console.print(summary)
