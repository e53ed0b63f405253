"""The ``hmacguard`` program: typer signatures that parse arguments and call :mod:`hmacguard.commands`.

The console entry point is :func:`main`. It imports nothing third-party until it has checked that the
``cli`` extra is installed: ``pip install hmacguard`` brings only the guard, and running the program
then prints a one-line hint instead of a traceback. The typer application itself is
:data:`hmacguard.cli.program.app` (also reachable as ``hmacguard.cli.app``).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["EXTRA_HINT", "main"]

#: What a user without the command-line tools is told (on stderr, exit 2).
EXTRA_HINT = (
    "hmacguard: the command-line tools are the 'cli' extra: pip install 'hmacguard[cli]' "
    "(or pipx install 'hmacguard[cli]')"
)
#: The modules without which no command can even parse its arguments.
_REQUIRED = ("typer", "rich")


def main() -> None:
    """Run the program (``hmacguard`` and ``python -m hmacguard``)."""
    if any(importlib.util.find_spec(name) is None for name in _REQUIRED):
        print(EXTRA_HINT, file=sys.stderr)
        raise SystemExit(2)
    from hmacguard.cli.program import app

    app()


def __getattr__(name: str) -> Any:
    # ``from hmacguard.cli import app`` (tests, embedding) without importing typer on every import.
    if name == "app":
        from hmacguard.cli.program import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
