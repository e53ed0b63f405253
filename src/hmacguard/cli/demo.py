"""``hmacguard demo``: what ``make demo`` runs."""

from __future__ import annotations

from hmacguard.cli._common import one_line_errors


@one_line_errors
def demo() -> None:
    """Run the main job on the embedded default: the lab's vulnerable and correct targets."""
    from hmacguard.commands.demo import run_demo

    run_demo()
