"""Tables that stay whole in a pipe.

On a terminal a rich table wraps to the screen. When stdout is a pipe or a file, rich assumes 80
columns and folds long cells (a target name split across lines breaks ``grep`` and ``cut``), so the
same rows are written as tab-separated lines instead: a header, then one line per row, markup removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_rows"]


def print_rows(table: Table, rows: Sequence[Sequence[str]], console: Console) -> None:
    """``rows`` (rich markup allowed) under ``table``'s columns: the table on a terminal, TSV elsewhere."""
    if console.is_terminal:
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    header = [Text.from_markup(str(c.header)).plain for c in table.columns]
    lines = ["\t".join(header)]
    lines += ["\t".join(" ".join(Text.from_markup(cell).plain.split()) for cell in row) for row in rows]
    console.file.write("\n".join(lines) + "\n")
