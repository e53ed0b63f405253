"""The ``hmacguard`` command: parses arguments, calls one detector, hands results to ``report/``.

No logic lives here; each subcommand module registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hmacguard",
    help="Find, fix and prove fixed memory exhaustion in HMAC-verifying HTTP endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each import registers that subcommand on ``app``.
from hmacguard.cli import audit as _audit  # noqa: E402,F401
from hmacguard.cli import demo as _demo  # noqa: E402,F401
from hmacguard.cli import history as _history  # noqa: E402,F401
from hmacguard.cli import lab as _lab  # noqa: E402,F401
from hmacguard.cli import leaks as _leaks  # noqa: E402,F401
from hmacguard.cli import rules as _rules  # noqa: E402,F401
from hmacguard.cli import scan as _scan  # noqa: E402,F401


def main() -> None:
    app()
