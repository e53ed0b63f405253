"""``hmacguard scan URL``: probe a live endpoint from outside and grade it."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hmacguard.cli import app
from hmacguard.cli._common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    one_line_errors,
    parse_headers,
    parse_size,
    write_text,
)
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Severity
from hmacguard.schemes import SCHEME_NAMES

if TYPE_CHECKING:
    from hmacguard.scan import Budget, ScanReport, ScanTarget
    from hmacguard.scan.openapi import OpenApiScan
    from hmacguard.scan.openapi_spec import OpenApiSpec


class OutputFormat(str, Enum):
    terminal = "terminal"
    json = "json"
    html = "html"
    sarif = "sarif"
    junit = "junit"


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


@app.command("scan")
@one_line_errors
def scan(
    url: Annotated[
        str | None, typer.Argument(help="The endpoint, e.g. http://127.0.0.1:8000/webhook.")
    ] = None,
    scheme: Annotated[
        str | None,
        typer.Option("--scheme", help=f"Signature scheme: {', '.join(SCHEME_NAMES)} (default github)."),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="HMACGUARD_SECRET",
            help="Sign probes correctly (or $HMACGUARD_SECRET); default: forged signatures.",
        ),
    ] = None,
    header: Annotated[str, typer.Option("--header", help="generic: the signature header.")] = "X-Signature",
    prefix: Annotated[str, typer.Option("--prefix", help="generic: text before the digest.")] = "",
    encoding: Annotated[str, typer.Option("--encoding", help="generic: hex or base64.")] = "hex",
    algorithm: Annotated[str, typer.Option("--algorithm", help="generic: sha256 or sha512.")] = "sha256",
    method: Annotated[str, typer.Option("-X", "--method", help="POST, PUT or PATCH.")] = "POST",
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Primary content type (default: the scheme's).")
    ] = None,
    add_header: Annotated[
        list[str] | None, typer.Option("-H", "--add-header", help="Extra 'Name: value' (repeatable).")
    ] = None,
    budget_bytes: Annotated[str, typer.Option("--budget-bytes", help="Body bytes to send at most.")] = "1GiB",
    budget_seconds: Annotated[float, typer.Option("--budget-seconds", help="Wall-clock limit.")] = 60.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a request may go without progress.")
    ] = 5.0,
    max_size: Annotated[str, typer.Option("--max-size", help="Largest probe body.")] = "100MiB",
    ladder: Annotated[
        str, typer.Option("--ladder", help="Comma-separated body sizes.")
    ] = "1KiB,1MiB,10MiB,100MiB",
    burst: Annotated[int, typer.Option("--burst", help="Requests in the burst.")] = 20,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Burst requests at a time.")] = 4,
    pid: Annotated[
        int | None, typer.Option("--pid", help="Observe this process tree's memory (e.g. gunicorn master).")
    ] = None,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Prometheus URL with process_resident_memory_bytes.")
    ] = None,
    launch: Annotated[
        str | None,
        typer.Option("--launch", help="Start this command, observe it, stop it at the end."),
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback target you are authorised to scan.")
    ] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; send nothing.")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.terminal,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    fail_under: Annotated[
        int | None, typer.Option("--fail-under", min=0, max=100, help="Exit 1 when the score is below.")
    ] = None,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="Exit 1 at a finding of this severity or above.")
    ] = None,
    source_map: Annotated[
        Path | None,
        typer.Option("--source-map", help="sarif: map endpoints to source lines (see docs/ci.md)."),
    ] = None,
    save: Annotated[bool, typer.Option("--save", help="Store this scan in the history (SQLite).")] = False,
    history: Annotated[
        Path | None, typer.Option("--history", help="History file (default: the user's data directory).")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="--save: a label for this scan.")] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="A previous JSON or SARIF scan report: report only new findings."),
    ] = None,
    openapi: Annotated[
        Path | None,
        typer.Option("--openapi", help="Scan every signed operation with a body in this OpenAPI spec."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="--openapi: where the API runs, e.g. http://127.0.0.1:8000."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list every probe.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal).")
    ] = None,
) -> None:
    """Probe URL with growing, chunked, mistyped and gzip bodies and a burst; report findings, a score
    (0-100) and a grade (A-F). Scan only what you are authorised to.

    Exit 0 when nothing fails the thresholds, 1 when --fail-on (default: low, that is any finding)
    or --fail-under does, 2 on a usage or target error.
    """
    from hmacguard.report.history import save_scan
    from hmacguard.report.scan_diff import apply_scan_baseline
    from hmacguard.report.scan_terminal import scan_progress
    from hmacguard.scan import Budget, ScanTarget, run_scan
    from hmacguard.scan.observe import check_sources, observation
    from hmacguard.scan.openapi import OpenApiScan, scan_openapi

    if (url is None) == (openapi is None):
        raise ConfigurationError("give either an endpoint URL or --openapi SPEC with --base-url")
    if openapi is not None and base_url is None:
        raise ConfigurationError("--openapi needs --base-url (where the API runs)")
    threshold = Severity.parse(fail_on) if fail_on is not None else None
    if threshold is None and fail_under is None:
        threshold = Severity.LOW
    # With --openapi each operation's own signature header picks its scheme unless --scheme is given.
    target = ScanTarget(
        url or str(base_url), scheme=scheme or "github", secret=secret, method=method,
        content_type=content_type, headers=parse_headers(add_header or []), generic_header=header,
        generic_prefix=prefix, generic_encoding=encoding, generic_algorithm=algorithm,
        allow_remote=allow_remote, insecure=insecure,
    )  # fmt: skip
    budget = Budget(
        bytes=parse_size(budget_bytes), seconds=budget_seconds, request_timeout=timeout,
        max_size=parse_size(max_size), ladder=_sizes(ladder), burst_requests=burst,
        burst_concurrency=concurrency,
    )  # fmt: skip
    check_sources(pid=pid, metrics=metrics, command=launch)
    baseline_text = baseline.read_text(encoding="utf-8") if baseline is not None else None
    spec = _load_spec(openapi) if openapi is not None else None
    if dry_run:
        _print_plan(target, budget, memory=any(x is not None for x in (pid, metrics, launch)))
        raise typer.Exit(EXIT_CLEAN)
    addresses = target.resolve()
    show_progress = sys.stderr.isatty() if progress is None else progress
    with (
        observation(pid=pid, metrics=metrics, command=launch, host=addresses, port=target.parsed().port,
                    allow_remote=allow_remote) as observer,
        scan_progress(enabled=show_progress) as sink,
    ):  # fmt: skip
        if spec is None:
            result: ScanReport | OpenApiScan = run_scan(target, budget, observer=observer, progress=sink)
        else:
            result = scan_openapi(
                spec, str(base_url), budget=budget, secret=secret, scheme=scheme,
                headers=target.headers, observer=observer, progress=sink,
                allow_remote=allow_remote, insecure=insecure,
            )  # fmt: skip
    if baseline_text is not None:
        result = apply_scan_baseline(result, baseline_text)
    if save:
        for report in result.reports if isinstance(result, OpenApiScan) else (result,):
            number, path = save_scan(report, history, label=label)
            print(f"saved as scan {number} in {path}", file=sys.stderr)
    _emit(result, output_format, output, verbose=verbose, source_map=source_map, fail_on=threshold)
    failed = threshold is not None and any(f.severity >= threshold for f in result.findings)
    failed = failed or (fail_under is not None and _score(result) < fail_under)
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_CLEAN)


def _load_spec(path: Path) -> OpenApiSpec:
    from hmacguard.scan.openapi_spec import load_openapi

    return load_openapi(path)


def _print_plan(target: ScanTarget, budget: Budget, *, memory: bool) -> None:
    from rich.console import Console

    from hmacguard.report.scan_terminal import render_plan
    from hmacguard.scan import plan_scan

    render_plan(plan_scan(target, budget, memory=memory), Console())


def _score(result: ScanReport | OpenApiScan) -> int:
    """An OpenAPI scan scores as its weakest operation."""
    from hmacguard.scan.openapi import OpenApiScan

    if isinstance(result, OpenApiScan):
        return min((r.score for r in result.reports), default=100)
    return result.score


def _emit(
    result: ScanReport | OpenApiScan,
    fmt: OutputFormat,
    output: Path | None,
    *,
    verbose: bool,
    source_map: Path | None,
    fail_on: Severity | None,
) -> None:
    """Render ``result`` in ``fmt`` to ``output`` (stdout when None)."""
    from rich.console import Console

    from hmacguard.scan.openapi import OpenApiScan

    if fmt is OutputFormat.terminal:
        handle = None if output is None else output.open("w", encoding="utf-8")
        console = Console() if handle is None else Console(file=handle, width=120, no_color=True)
        try:
            if isinstance(result, OpenApiScan):
                from hmacguard.report.openapi_terminal import render_openapi_scan

                render_openapi_scan(result, console, verbose=verbose)
            else:
                from hmacguard.report.scan_terminal import render_scan

                render_scan(result, console, verbose=verbose)
        finally:
            if handle is not None:
                handle.close()
        return
    if fmt is OutputFormat.json:
        import json

        if isinstance(result, OpenApiScan):
            text = json.dumps(result.to_dict(), indent=2) + "\n"
        else:
            from hmacguard.report.scan_json import render_json

            text = render_json(result)
    elif fmt is OutputFormat.html:
        from hmacguard.report.html import render_scan_html

        text = render_scan_html(result)
    elif fmt is OutputFormat.sarif:
        from hmacguard.report.scan_sarif import render_scan_sarif

        text = render_scan_sarif(result, source_map=source_map)
    else:
        from hmacguard.report.junit import render_scan_junit

        text = render_scan_junit(result, fail_on=fail_on or Severity.LOW)
    write_text(text, output)
