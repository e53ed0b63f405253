"""``hmacguard scan URL``: probe a live endpoint from outside and grade it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli._common import finish, one_line_errors, parse_headers, parse_size
from hmacguard.commands.outcome import EXIT_CLEAN
from hmacguard.errors import ConfigurationError
from hmacguard.findings import Severity
from hmacguard.report import Format
from hmacguard.scan.plan import PHASES
from hmacguard.schemes import SCHEME_NAMES


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def _read_probe_body(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read --probe-body {path}: {exc.strerror or exc}") from None


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
    phase: Annotated[
        list[str] | None,
        typer.Option("--phase", help=f"Run only this phase (repeatable): {', '.join(PHASES)}."),
    ] = None,
    skip_phase: Annotated[
        list[str] | None, typer.Option("--skip-phase", help="Leave this phase out (repeatable).")
    ] = None,
    probe_body: Annotated[
        Path | None,
        typer.Option("--probe-body", help="The enforcement probes' body (default: a marked test event)."),
    ] = None,
    burst: Annotated[int, typer.Option("--burst", help="Requests in the burst.")] = 20,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Burst requests at a time.")] = 4,
    held_uploads: Annotated[
        int, typer.Option("--held-uploads", help="Uploads held open at once (needs server memory).")
    ] = 400,
    held_size: Annotated[
        str, typer.Option("--held-size", help="Body each held upload declares (at most the accepted size).")
    ] = "250000",
    held_sources: Annotated[
        int,
        typer.Option(
            "--held-sources",
            help="Spread the held uploads over this many loopback addresses, as from that many "
            "clients (a target that answers on 127.0.0.0/8 only).",
        ),
    ] = 1,
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
    output_format: Annotated[Format, typer.Option("--format")] = Format.terminal,
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
    """Probe URL: is the signature enforced (unsigned, forged, other path spellings; with --secret a
    replay and stale timestamps), then growing, chunked, mistyped and gzip bodies and a burst; report
    findings, a score (0-100) and a grade (A-F). Scan only what you are authorised to.

    Exit 0 when nothing fails the thresholds, 1 when --fail-on (default: low, that is any finding)
    or --fail-under does, 2 on a usage or target error.
    """
    from hmacguard.commands import scan as command
    from hmacguard.scan import Budget, PhaseSelection, ScanTarget

    if (url is None) == (openapi is None):
        raise ConfigurationError("give either an endpoint URL or --openapi SPEC with --base-url")
    if openapi is not None and base_url is None:
        raise ConfigurationError("--openapi needs --base-url (where the API runs)")
    threshold = Severity.parse(fail_on) if fail_on is not None else None
    # With --openapi each operation's own signature header picks its scheme unless --scheme is given.
    target = ScanTarget(
        url or str(base_url), scheme=scheme or "github", secret=secret, method=method,
        content_type=content_type, headers=parse_headers(add_header or []), generic_header=header,
        generic_prefix=prefix, generic_encoding=encoding, generic_algorithm=algorithm,
        allow_remote=allow_remote, insecure=insecure, probe_body=_read_probe_body(probe_body),
    )  # fmt: skip
    selection = PhaseSelection.of(phase or (), skip_phase or ())
    budget = Budget(
        bytes=parse_size(budget_bytes), seconds=budget_seconds, request_timeout=timeout,
        max_size=parse_size(max_size), ladder=_sizes(ladder), burst_requests=burst,
        burst_concurrency=concurrency, held_uploads=held_uploads, held_size=parse_size(held_size),
        held_sources=held_sources,
    )  # fmt: skip
    if dry_run:
        from rich.console import Console

        from hmacguard.report.terminal.scan import render_plan

        plan = command.plan(target, budget, pid=pid, metrics=metrics, launch=launch, selection=selection)
        render_plan(plan, Console())
        raise typer.Exit(EXIT_CLEAN)
    outcome = command.scan(
        target, budget, openapi=openapi, base_url=base_url, scheme=scheme, pid=pid, metrics=metrics,
        launch=launch, baseline=baseline, fail_on=threshold, fail_under=fail_under, save=save,
        history=history, label=label, progress=sys.stderr.isatty() if progress is None else progress,
        selection=selection,
    )  # fmt: skip
    finish(outcome, output_format, output, fail_on=threshold, verbose=verbose, source_map=source_map)
