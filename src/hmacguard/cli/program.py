"""The typer application: every subcommand, registered in one place.

The subcommand modules define plain functions and import nothing from here, so the CLI's modules form
no import cycle (import-linter checks it).
"""

from __future__ import annotations

import typer

from hmacguard.cli import audit, demo, history, lab, leaks, rules, scan, store

__all__ = ["app"]

app = typer.Typer(
    name="hmacguard",
    help="Find, fix and prove fixed memory exhaustion in HMAC-verifying HTTP endpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("scan")(scan.scan)
app.command("audit")(audit.audit_command)
app.command("leaks")(leaks.leaks)
app.command("rules")(rules.rules_command)
app.command("history")(history.history)
app.command("diff")(history.diff)
app.command("demo")(demo.demo)
app.add_typer(lab.lab_app, name="lab")
app.add_typer(store.store_app, name="store")
