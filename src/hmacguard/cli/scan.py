"""``hmacguard scan URL``: probe a live endpoint from outside and grade it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli import app
from hmacguard.cli._common import EXIT_CLEAN, EXIT_FINDINGS, one_line_errors, parse_size
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Severity
from hmacguard.schemes import SCHEME_NAMES


class OutputFormat(str, Enum):
    terminal = "terminal"
    json = "json"


def _headers(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ConfigurationError(f"header must look like 'Name: value', not {value!r}")
        out[name.strip()] = content.strip()
    return out


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


@app.command("scan")
@one_line_errors
def scan(
    url: Annotated[str, typer.Argument(help="The endpoint, e.g. http://127.0.0.1:8000/webhook.")],
    scheme: Annotated[
        str, typer.Option("--scheme", help=f"Signature scheme: {', '.join(SCHEME_NAMES)}.")
    ] = "github",
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
    import sys

    from rich.console import Console

    from hmacguard.report.scan_json import render_json
    from hmacguard.report.scan_terminal import render_plan, render_scan, scan_progress
    from hmacguard.scan import Budget, ScanTarget, plan_scan, run_scan
    from hmacguard.scan.observe import check_sources, observation

    threshold = Severity.parse(fail_on) if fail_on is not None else None
    if threshold is None and fail_under is None:
        threshold = Severity.LOW
    target = ScanTarget(
        url, scheme=scheme, secret=secret, method=method, content_type=content_type,
        headers=_headers(add_header or []), generic_header=header, generic_prefix=prefix,
        generic_encoding=encoding, generic_algorithm=algorithm, allow_remote=allow_remote,
        insecure=insecure,
    )  # fmt: skip
    budget = Budget(
        bytes=parse_size(budget_bytes), seconds=budget_seconds, request_timeout=timeout,
        max_size=parse_size(max_size), ladder=_sizes(ladder), burst_requests=burst,
        burst_concurrency=concurrency,
    )  # fmt: skip
    check_sources(pid=pid, metrics=metrics, command=launch)
    if dry_run:
        plan = plan_scan(target, budget, memory=any(x is not None for x in (pid, metrics, launch)))
        render_plan(plan, Console())
        raise typer.Exit(EXIT_CLEAN)
    addresses = target.resolve()
    parsed = target.parsed()
    show_progress = sys.stderr.isatty() if progress is None else progress
    with (
        observation(pid=pid, metrics=metrics, command=launch, host=addresses, port=parsed.port,
                    allow_remote=allow_remote) as observer,
        scan_progress(enabled=show_progress) as sink,
    ):  # fmt: skip
        report = run_scan(target, budget, observer=observer, progress=sink)
    if output_format is OutputFormat.json:
        text = render_json(report)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
    elif output is None:
        render_scan(report, Console(), verbose=verbose)
    else:
        with output.open("w", encoding="utf-8") as handle:
            render_scan(report, Console(file=handle, width=120, no_color=True), verbose=verbose)
    failed = threshold is not None and any(f.severity >= threshold for f in report.findings)
    failed = failed or (fail_under is not None and report.score < fail_under)
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_CLEAN)
