"""Collects the matrix's rows over the session and writes the table (printed with ``-s``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import beyond
from .matrix import Row, summary, table

_ROWS: list[Row] = []
_WRITTEN: list[Path] = []
_BEYOND: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))


@pytest.fixture(scope="session")
def beyond_seen() -> dict[str, dict[str, Counter[str]]]:
    """server -> attempt -> the answers to it (see :mod:`.beyond`)."""
    return _BEYOND


@pytest.fixture(scope="session")
def matrix_rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Row]]:
    """The table's rows; tests append the rows they checked. Written to ``spellings-table.md``."""
    yield _ROWS
    if _ROWS or _BEYOND:
        path = tmp_path_factory.getbasetemp() / "spellings-table.md"
        text = summary(_ROWS) + "\n\n" + table(_ROWS) + "\n"
        if _BEYOND:
            text += "\n" + beyond.table(_BEYOND, list(_BEYOND)) + "\n"
        path.write_text(text)
        _WRITTEN.append(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _ROWS and not _BEYOND:
        return
    sent = sum(r.sent for r in _ROWS)
    reached = sum(r.reached for r in _ROWS)
    where = f" (table: {_WRITTEN[0]})" if _WRITTEN else ""
    terminalreporter.write_sep("-", "path-spellings matrix")
    terminalreporter.write_line(
        f"{len(_ROWS)} configurations x servers, {sent} unsigned spellings, "
        f"{reached} reached a protected view{where}"
    )
    if config.getoption("capture") == "no":
        if _ROWS:
            terminalreporter.write_line("reached a protected view / unsigned spellings sent:")
            terminalreporter.write_line(summary(_ROWS))
            terminalreporter.write_line("")
            terminalreporter.write_line(table(_ROWS))
        if _BEYOND:
            terminalreporter.write_line("")
            terminalreporter.write_line(beyond.table(_BEYOND, list(_BEYOND)))
