"""``hmacguard leaks``: drive an app in-process and name the lines that keep memory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from hmacguard.commands.outcome import Outcome, exit_status, load_baseline
from hmacguard.findings import Severity
from hmacguard.leaks import LeakReport, Recipe, find_leaks, load_django, load_target

__all__ = ["find_app_leaks"]


def find_app_leaks(
    target: str | None,
    recipe: Recipe,
    *,
    django_settings: str | None = None,
    interface: Literal["wsgi", "asgi"] | None = None,
    requests: int = 200,
    rounds: int = 8,
    warmup: int | None = None,
    min_bytes: float = 32,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    top: int = 10,
    baseline: Path | None = None,
    fail_on: Severity = Severity.LOW,
) -> Outcome[LeakReport]:
    """Load ``target`` (``module:attr``) or the Django project of ``django_settings`` and measure it."""
    known = load_baseline(baseline, "leaks")
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
        interface=interface,
        requests=requests,
        rounds=rounds,
        warmup=warmup,
        min_bytes=min_bytes,
        include=include,
        exclude=exclude,
        top=top,
    )
    if known is not None:
        report = report.without_baseline(known)
    return Outcome(report, exit_status((f.severity for f in report.findings), fail_on))
