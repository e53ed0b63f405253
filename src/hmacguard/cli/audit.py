"""``hmacguard audit PATH...``: find the flaw in source and configuration.

Exit codes (the contract, docs/ci.md): 0 no finding at or above ``--fail-on``, 1 at least one,
2 usage error (missing path, bad option, unreadable baseline), 3 no finding at or above the
threshold but the audit is incomplete (a file did not parse or read, a rule crashed).
"""

from __future__ import annotations

from pathlib import Path

import typer

from hmacguard.cli._common import finish, one_line_errors
from hmacguard.findings import Severity
from hmacguard.report import Format


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
    from hmacguard.commands.audit import audit_paths

    threshold = Severity.parse(fail_on)
    outcome = audit_paths(
        paths,
        rules=rule,
        exclude=exclude,
        include_vendored=include_vendored,
        include_tests=include_tests,
        baseline=baseline,
        fail_on=threshold,
    )
    finish(outcome, output_format, output, fail_on=threshold)
