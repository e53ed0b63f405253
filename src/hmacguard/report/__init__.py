"""Renderers: any detector's result (:class:`hmacguard.findings.Result`) in one format per module.

- :mod:`~hmacguard.report.terminal`: for a person (rich), one view per kind of result;
- :mod:`~hmacguard.report.json`: one versioned envelope for every kind;
- :mod:`~hmacguard.report.sarif`: SARIF 2.1.0 for GitHub code scanning;
- :mod:`~hmacguard.report.junit`: JUnit XML, one testcase per rule checked;
- :mod:`~hmacguard.report.html`: one self-contained page;

and :mod:`~hmacguard.report.baseline`, which reads a JSON report or SARIF log back as a baseline.
Renderers compute nothing a detector should: findings, scores and identities come with the result
(:func:`hmacguard.findings.fingerprints` is the one finding identity).
"""

from __future__ import annotations

import enum
from pathlib import Path

from rich.console import Console

from hmacguard.findings import Result, Severity, fingerprints
from hmacguard.report.version import tool_version
from hmacguard.scan.sourcemap import SourceMap

__all__ = ["Format", "fingerprints", "tool_version", "write_report"]


class Format(str, enum.Enum):
    """The report formats every command offers."""

    terminal = "terminal"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    html = "html"


def render(
    result: Result,
    fmt: Format,
    *,
    source_map: SourceMap | str | Path | None = None,
    fail_on: Severity = Severity.LOW,
) -> str:
    """``result`` as a document in ``fmt`` (any format but terminal)."""
    if fmt is Format.json:
        from hmacguard.report.json import render_json

        return render_json(result)
    if fmt is Format.sarif:
        from hmacguard.report.sarif import render_sarif

        return render_sarif(result, source_map=source_map)
    if fmt is Format.junit:
        from hmacguard.report.junit import render_junit

        return render_junit(result, fail_on=fail_on)
    if fmt is Format.html:
        from hmacguard.report.html import render_html

        return render_html(result)
    raise ValueError(f"{fmt.value} is not a document format")


def write_report(
    result: Result,
    fmt: Format,
    output: Path | None = None,
    *,
    verbose: bool = False,
    source_map: SourceMap | str | Path | None = None,
    fail_on: Severity = Severity.LOW,
) -> None:
    """Render ``result`` in ``fmt`` to the file ``output``, or to stdout when None.

    ``fail_on`` is the run's threshold (JUnit fails only the testcases at or above it), ``source_map``
    maps endpoints to code (SARIF), ``verbose`` lists every probe (terminal).
    """
    if fmt is Format.terminal:
        from hmacguard.report.terminal import render_terminal

        if output is None:
            render_terminal(result, verbose=verbose)
            return
        with output.open("w", encoding="utf-8") as handle:
            render_terminal(result, Console(file=handle, width=120, no_color=True), verbose=verbose)
        return
    text = render(result, fmt, source_map=source_map, fail_on=fail_on)
    if output is None:
        import sys

        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
