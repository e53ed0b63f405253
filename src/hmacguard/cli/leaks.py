"""``hmacguard leaks TARGET``: drive an app in-process and name the lines that keep memory per request."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli._common import fail, finish, one_line_errors, parse_headers, parse_size
from hmacguard.findings import Severity
from hmacguard.report import Format
from hmacguard.schemes import SCHEME_NAMES


class InterfaceChoice(str, Enum):
    auto = "auto"
    wsgi = "wsgi"
    asgi = "asgi"


@one_line_errors
def leaks(
    target: Annotated[
        str | None,
        typer.Argument(help="module:attr naming a WSGI or ASGI app (or use --django-settings)."),
    ] = None,
    django_settings: Annotated[
        str | None, typer.Option("--django-settings", help="Django settings module: drive its WSGI handler.")
    ] = None,
    interface: Annotated[
        InterfaceChoice, typer.Option("--interface", help="Force WSGI or ASGI instead of detecting it.")
    ] = InterfaceChoice.auto,
    requests: Annotated[
        int, typer.Option("-n", "--requests", min=4, max=1_000_000, help="Measured requests.")
    ] = 200,
    rounds: Annotated[int, typer.Option("--rounds", min=2, max=100, help="Snapshots across the run.")] = 8,
    warmup: Annotated[int | None, typer.Option("--warmup", min=0, help="Unmeasured first requests.")] = None,
    method: Annotated[str, typer.Option("-X", "--method")] = "POST",
    path: Annotated[str, typer.Option("--path", help="Path and query string.")] = "/webhook",
    header: Annotated[
        list[str] | None, typer.Option("-H", "--header", help="'Name: value' (repeatable).")
    ] = None,
    body_size: Annotated[
        str, typer.Option("--body-size", help="Body bytes per request (e.g. 64KiB, 0).")
    ] = "64KiB",
    content_type: Annotated[str, typer.Option("--content-type")] = "application/json",
    scheme: Annotated[
        str | None, typer.Option("--scheme", help=f"Sign every request: {', '.join(SCHEME_NAMES)}.")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option("--secret", envvar="HMACGUARD_SECRET", help="Signing secret (or $HMACGUARD_SECRET)."),
    ] = None,
    min_bytes: Annotated[
        str, typer.Option("--min-bytes", help="Ignore lines keeping less than this per request.")
    ] = "32",
    include: Annotated[
        list[Path] | None, typer.Option("--include", help="Directory to treat as application code.")
    ] = None,
    exclude: Annotated[
        list[Path] | None, typer.Option("--exclude", help="Directory to treat as library code.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="Lines to report.")] = 10,
    output: Annotated[Format, typer.Option("--format")] = Format.terminal,
    output_file: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    fail_on: Annotated[
        str, typer.Option("--fail-on", help="Exit 1 at findings of this severity or above.")
    ] = "low",
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="A previous JSON or SARIF leaks report: report only new findings."),
    ] = None,
) -> None:
    """Send N requests to TARGET in-process; report the application lines that keep memory after each.

    Growth that continues is a leak; growth that stops (a bounded cache) is reported as a plateau.
    Exit 0 when nothing reaches --fail-on, 1 when something does, 2 on a usage or target error.
    """
    from hmacguard.commands.leaks import find_app_leaks
    from hmacguard.leaks import Recipe

    threshold = Severity.parse(fail_on)
    if target is None and django_settings is None:
        fail("give a TARGET (module:attr) or --django-settings")
    recipe = Recipe(
        method=method,
        path=path,
        headers=parse_headers(header or []),
        body_size=parse_size(body_size),
        scheme=scheme,
        secret=secret,
        content_type=content_type,
    )
    outcome = find_app_leaks(
        target,
        recipe,
        django_settings=django_settings,
        interface=None if interface is InterfaceChoice.auto else interface.value,  # type: ignore[arg-type]
        requests=requests,
        rounds=rounds,
        warmup=warmup,
        min_bytes=parse_size(min_bytes),
        include=[str(p) for p in include or []],
        exclude=[str(p) for p in exclude or []],
        top=top,
        baseline=baseline,
        fail_on=threshold,
    )
    finish(outcome, output, output_file, fail_on=threshold)
