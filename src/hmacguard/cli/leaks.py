"""``hmacguard leaks TARGET``: drive an app in-process and name the lines that keep memory per request."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hmacguard.cli import app
from hmacguard.cli._common import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    fail,
    one_line_errors,
    parse_headers,
    parse_size,
    write_text,
)
from hmacguard.findings import Severity
from hmacguard.schemes import SCHEME_NAMES


class OutputFormat(str, Enum):
    terminal = "terminal"
    json = "json"
    html = "html"


class InterfaceChoice(str, Enum):
    auto = "auto"
    wsgi = "wsgi"
    asgi = "asgi"


@app.command("leaks")
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
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.terminal,
    output_file: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    fail_on: Annotated[
        str, typer.Option("--fail-on", help="Exit 1 at findings of this severity or above.")
    ] = "low",
) -> None:
    """Send N requests to TARGET in-process; report the application lines that keep memory after each.

    Growth that continues is a leak; growth that stops (a bounded cache) is reported as a plateau.
    Exit 0 when nothing reaches --fail-on, 1 when something does, 2 on a usage or target error.
    """
    from hmacguard.leaks import Recipe, find_leaks, load_django, load_target
    from hmacguard.report.leaks_terminal import render_json, render_terminal

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
    if target is not None:
        if django_settings is not None:
            os.environ["DJANGO_SETTINGS_MODULE"] = django_settings
        application = load_target(target)
    else:
        application = load_django(str(django_settings))
    report = find_leaks(
        application,
        recipe,
        name=target or f"django:{django_settings}",
        interface=None if interface is InterfaceChoice.auto else interface.value,  # type: ignore[arg-type]
        requests=requests,
        rounds=rounds,
        warmup=warmup,
        min_bytes=parse_size(min_bytes),
        include=[str(p) for p in include or []],
        exclude=[str(p) for p in exclude or []],
        top=top,
    )
    if output is OutputFormat.json:
        write_text(render_json(report) + "\n", output_file)
    elif output is OutputFormat.html:
        from hmacguard.report.html import render_leaks_html

        write_text(render_leaks_html(report), output_file)
    elif output_file is None:
        render_terminal(report)
    else:
        from rich.console import Console

        with output_file.open("w", encoding="utf-8") as handle:
            render_terminal(report, Console(file=handle, width=120, no_color=True))
    worst = max((f.severity for f in report.findings()), default=None)
    raise typer.Exit(EXIT_FINDINGS if worst is not None and worst >= threshold else EXIT_CLEAN)
