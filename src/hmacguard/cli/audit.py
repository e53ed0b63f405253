"""``hmacguard audit PATH...``: find the flaw in source and configuration.

Exit codes (the contract, docs/ci.md): 0 no finding at or above ``--fail-on``, 1 at least one,
2 usage error (missing path, bad option, unreadable baseline), 3 no finding at or above the
threshold but the audit is incomplete (a file did not parse or read, a rule crashed).
"""

from __future__ import annotations

import enum
from pathlib import Path

import typer
from rich.console import Console

from hmacguard.cli import app
from hmacguard.cli._common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    one_line_errors,
    write_text,
)


class Format(str, enum.Enum):
    terminal = "terminal"
    json = "json"
    sarif = "sarif"
    html = "html"
    junit = "junit"


@app.command("audit")
@one_line_errors
def audit_command(
    paths: list[Path] = typer.Argument(..., help="Files or folders to audit."),  # noqa: B008
    output_format: Format = typer.Option(Format.terminal, "--format", "-f", help="Report format."),  # noqa: B008
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report here."),  # noqa: B008
    baseline: Path | None = typer.Option(  # noqa: B008
        None, "--baseline", help="A previous JSON or SARIF report: report only new findings."
    ),
    fail_on: str = typer.Option(
        "low", "--fail-on", help="Exit 1 when a finding is at least this severe (info..critical)."
    ),
    rule: list[str] = typer.Option(  # noqa: B008
        [], "--rule", help="Run only this rule (repeatable; see `hmacguard rules`)."
    ),
    exclude: list[str] = typer.Option(  # noqa: B008
        [], "--exclude", help="Leave out paths matching this .gitignore-style GLOB (repeatable)."
    ),
    include_vendored: bool = typer.Option(
        False,
        "--include-vendored",
        help="Also audit vendored folders (node_modules, vendor, dist...) and minified or generated files.",
    ),
    include_tests: bool = typer.Option(
        False, "--include-tests", help="Count findings in test code toward the exit status."
    ),
) -> None:
    """Audit Python, JavaScript/TypeScript, settings, nginx and lock files for unbounded bodies,
    retained request data and unsafe signature checks."""
    from hmacguard.audit import audit
    from hmacguard.findings import RULES, Severity
    from hmacguard.report import fingerprints
    from hmacguard.report.json import read_fingerprints, render_json
    from hmacguard.report.sarif import render_sarif

    threshold = Severity.parse(fail_on)
    known = read_fingerprints(baseline.read_text(encoding="utf-8")) if baseline else None
    result = audit(
        paths,
        rules=rule or None,
        exclude=exclude,
        include_vendored=include_vendored,
        include_tests=include_tests,
    )
    if known is not None:
        result = result.without_baseline(known, fingerprints)
    if output_format is Format.json:
        text = render_json(
            "audit",
            result.findings,
            {
                "run": result.summary(),
                "suppressed": [f.to_dict() for f in result.suppressed],
                "test_findings": [f.to_dict() for f in result.test_findings],
                "diagnostics": [d.to_dict() for d in result.diagnostics],
                "unaudited": list(result.unaudited),
            },
        )
    elif output_format is Format.sarif:
        text = render_sarif(
            "audit",
            result.findings,
            [RULES[r] for r in result.rules],
            suppressed=result.suppressed,
            notifications=result.diagnostics,
            properties=result.summary(),
        )
    elif output_format is Format.html:
        from hmacguard.report.html import render_audit_html

        text = render_audit_html(result)
    elif output_format is Format.junit:
        from hmacguard.report.junit import render_audit_junit

        text = render_audit_junit(result, fail_on=threshold)
    else:
        from hmacguard.report.audit_terminal import render_audit_terminal

        if output is None:
            render_audit_terminal(result)
            text = ""
        else:
            with output.open("w", encoding="utf-8") as fh:
                render_audit_terminal(result, Console(file=fh, no_color=True, width=120))
    if text:
        write_text(text, output)
    if result.at_or_above(threshold):
        raise typer.Exit(EXIT_FINDINGS)
    raise typer.Exit(EXIT_INCOMPLETE if result.incomplete else EXIT_CLEAN)
