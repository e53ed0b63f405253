"""Drive an application in-process and name the lines that keep memory after each request.

>>> from hmacguard.leaks import Recipe, find_leaks
>>> report = find_leaks(app, Recipe(body_size=65536), requests=200)   # doctest: +SKIP
>>> for site in report.growing:                                       # doctest: +SKIP
...     print(site.where, site.source, site.bytes_per_request)

``app`` is a WSGI or ASGI application (told apart by its signature) or any callable taking no
arguments; see heap.py for how the measurement works and keepers.py for how a retained object is
traced back to the line that stored it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from hmacguard.errors import ConfigurationError
from hmacguard.leaks.analysis import DEFAULT_MIN_BYTES, LeakReport, RetentionSite, analyse, format_bytes
from hmacguard.leaks.frames import FramePolicy, Site
from hmacguard.leaks.harness import (
    AppWorkload,
    CallableWorkload,
    Interface,
    Recipe,
    detect_interface,
    load_django,
    load_target,
    make_workload,
)
from hmacguard.leaks.heap import measure

#: Bytes one run may send in all: a leaking app keeps every body, in this very process.
MAX_TOTAL_BYTES = 2 * 1024**3

__all__ = [
    "MAX_TOTAL_BYTES",
    "AppWorkload",
    "CallableWorkload",
    "FramePolicy",
    "Interface",
    "LeakReport",
    "Recipe",
    "RetentionSite",
    "Site",
    "detect_interface",
    "find_leaks",
    "format_bytes",
    "load_django",
    "load_target",
    "make_workload",
]


def find_leaks(
    target: object,
    recipe: Recipe | None = None,
    *,
    name: str | None = None,
    interface: Interface | Literal["call"] | None = None,
    requests: int = 200,
    rounds: int = 8,
    warmup: int | None = None,
    min_bytes: float = DEFAULT_MIN_BYTES,
    frames: int | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    top: int = 10,
    thread: bool | None = None,
) -> LeakReport:
    """Measure ``target`` over ``requests`` requests (or calls) and report what each line keeps.

    Requests to an app run on a worker thread of their own, as a server runs them (and on a shallow
    stack, which makes tracing cheaper: see heap.measure); a plain callable runs on the caller's
    thread, where its fixtures live. ``thread`` overrides either choice.
    """
    workload = make_workload(target, recipe, interface=interface)
    if isinstance(workload, AppWorkload):
        # A leaky app keeps every body it is sent: the run's total is what it may end up holding.
        total = workload.recipe.body_size * (requests + (warmup or requests // 20 + 3) + 3)
        if total > MAX_TOTAL_BYTES:
            workload.close()
            raise ConfigurationError(
                f"{requests} requests of {format_bytes(workload.recipe.body_size)} would send "
                f"{format_bytes(total)}, and a leaking app keeps all of it; stay under "
                f"{format_bytes(MAX_TOTAL_BYTES)} (fewer requests or a smaller body)"
            )
    try:
        measurement = measure(
            workload,
            requests=requests,
            rounds=rounds,
            warmup=warmup,
            policy=FramePolicy(include=include, exclude=exclude),
            frames=frames,
            thread=isinstance(workload, AppWorkload) if thread is None else thread,
        )
    finally:
        workload.close()
    body_size = workload.recipe.body_size if isinstance(workload, AppWorkload) else None
    return analyse(
        measurement,
        target=name or _describe(target),
        min_bytes=min_bytes,
        body_size=body_size,
        top=top,
    )


def _describe(target: object) -> str:
    """``module:function`` for a function or class, the object's repr (``<Flask 'app'>``) otherwise."""
    qualname = getattr(target, "__qualname__", None)
    module = getattr(target, "__module__", None)
    if isinstance(qualname, str) and isinstance(module, str):
        return f"{module}:{qualname}"
    text = repr(target)
    return text if len(text) <= 80 else text[:77] + "..."
