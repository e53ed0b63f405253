"""Collects the matrix's rows over the session and writes the table (printed with ``-s``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .matrix import Row, table

_ROWS: list[Row] = []
_WRITTEN: list[Path] = []


@pytest.fixture(scope="session")
def matrix_rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Row]]:
    """The table's rows; tests append the rows they checked. Written to ``spellings-table.md``."""
    yield _ROWS
    if _ROWS:
        path = tmp_path_factory.getbasetemp() / "spellings-table.md"
        path.write_text(table(_ROWS) + "\n")
        _WRITTEN.append(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _ROWS:
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
        terminalreporter.write_line(table(_ROWS))
