"""What every subcommand shares: one-line errors, byte sizes, headers, and handing a result to a report."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import typer

from hmacguard.commands.outcome import EXIT_INTERRUPTED, EXIT_USAGE, Outcome
from hmacguard.errors import ConfigurationError, HmacGuardError
from hmacguard.findings import Result, Severity
from hmacguard.report import Format, write_report


class ListFormat(str, Enum):
    """``--format`` of the commands that print a terminal listing or JSON (lab, history, store)."""

    terminal = "terminal"
    json = "json"


P = ParamSpec("P")
R = TypeVar("R")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str) -> int:
    """``"10MiB"``, ``"10m"`` (binary, as nginx reads it), ``"1.5 GB"``, ``"4096"`` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigurationError(f"not a size: {text!r} (e.g. 10MiB, 512k, 1GB)")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    letter = unit[:1] if unit[:1] in "kmgt" else ""
    # "MB" is decimal; "MiB" and the bare "m"/"k" nginx and Django users write are binary.
    binary = "i" in unit or (letter and unit == letter)
    factor = 1024 ** "kmgt".index(letter) * 1024 if binary and letter else _UNITS[letter]
    return int(number * factor)


def parse_headers(values: list[str]) -> dict[str, str]:
    """Repeated ``-H 'Name: value'`` options as a dict; a malformed one is a ConfigurationError."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise ConfigurationError(f"header must look like 'Name: value', not {value!r}")
        out[name.strip()] = content.strip()
    return out


def write_text(text: str, output: Path | None = None) -> None:
    """Text to ``output``, or to stdout when None."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def finish(
    outcome: Outcome[Result],
    fmt: Format,
    output: Path | None,
    *,
    fail_on: Severity | None = None,
    verbose: bool = False,
    source_map: Path | None = None,
) -> NoReturn:
    """Write the outcome's report, then exit with its status."""
    write_report(
        outcome.result, fmt, output, verbose=verbose, source_map=source_map, fail_on=fail_on or Severity.LOW
    )
    raise typer.Exit(outcome.status)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, no traceback, a non-zero exit."""
    print(f"hmacguard: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our own errors (and Ctrl-C) into one line and exit code 2 instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except HmacGuardError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)
        except OSError as exc:
            fail(f"{exc.strerror or exc} ({getattr(exc, 'filename', None) or 'I/O'})")

    return wrapper
