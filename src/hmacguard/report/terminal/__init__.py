"""``--format terminal``: any result for a person reading a terminal (rich).

Each kind of result has its view beside this module (scan, audit, leaks; history and diff; the rule
catalogue); :func:`render_terminal` picks the one for the result's ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from rich.console import Console

from hmacguard.audit.model import AuditResult
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Result
from hmacguard.leaks.analysis import LeakReport
from hmacguard.report.terminal.audit import render_audit
from hmacguard.report.terminal.leaks import render_leaks
from hmacguard.report.terminal.scan import render_openapi_scan, render_scan
from hmacguard.scan.model import ScanReport
from hmacguard.scan.openapi import OpenApiScan

__all__ = ["render_terminal"]

_VIEWS: Mapping[str, Callable[[Result, Console | None, bool], None]] = {
    "scan": lambda r, c, verbose: render_scan(cast(ScanReport, r), c, verbose=verbose),
    "openapi-scan": lambda r, c, verbose: render_openapi_scan(cast(OpenApiScan, r), c, verbose=verbose),
    "audit": lambda r, c, verbose: render_audit(cast(AuditResult, r), c),
    "leaks": lambda r, c, verbose: render_leaks(cast(LeakReport, r), c),
}


def render_terminal(result: Result, console: Console | None = None, *, verbose: bool = False) -> None:
    """Print ``result`` on ``console`` (stdout by default); ``verbose`` adds every probe of a scan."""
    view = _VIEWS.get(result.kind)
    if view is None:
        raise ConfigurationError(f"no terminal view for a {result.kind} result")
    view(result, console, verbose)
