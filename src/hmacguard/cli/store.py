"""``hmacguard store check URL``: is this Redis fit for the guard's replay store and rate limiter?"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hmacguard.cli._common import ListFormat, fail, write_text
from hmacguard.commands.outcome import EXIT_INTERRUPTED, EXIT_USAGE
from hmacguard.errors import HmacGuardError

store_app = typer.Typer(help="Check the Redis the guard's stores will use.", no_args_is_help=True)


_URL_HELP = (
    "The Redis URL, exactly as the guard is given it: redis://, rediss://, unix://, "
    "redis[s]+cluster://, redis[s]+sentinel://."
)


@store_app.command("check")
def check(
    url: Annotated[str, typer.Argument(help=_URL_HELP, show_default=False)],
    output_format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.terminal,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, max=60.0, help="Seconds each round trip may take.")
    ] = 2.0,
) -> None:
    """Connect as the guard's stores will, report the topology, exercise a replay hold, commit and
    release and a rate-limit admission (probe keys removed after), and warn of the settings the guard
    cannot see (eviction, persistence, replicas).

    Exit 0 usable with no warning, 1 usable with warnings, 2 unusable (one line on stderr).
    """
    from hmacguard.commands.store import store_check

    try:
        outcome = store_check(url, timeout=timeout)
    except HmacGuardError as exc:
        if output_format is ListFormat.json:
            from hmacguard.report.json import store_check_json

            write_text(store_check_json(None, str(exc)))
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    if output_format is ListFormat.json:
        from hmacguard.report.json import store_check_json

        write_text(store_check_json(outcome.result))
    else:
        from hmacguard.report.terminal.store import store_check_text

        write_text(store_check_text(outcome.result))
    sys.stdout.flush()
    raise typer.Exit(outcome.status if outcome.status in (0, 1) else EXIT_USAGE)
