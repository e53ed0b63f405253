"""pytest plugin: a per-request memory retention budget, asserted in any test.

Registered as the ``hmacguard`` pytest11 entry point, so installing hmacguard is enough.

The marker alone repeats the test body and measures what each call keeps::

    @pytest.mark.leak_budget("1 KiB", calls=200)
    def test_parse_does_not_keep_bodies():
        parse(make_body())

The ``leak_check`` fixture drives a WSGI/ASGI app (or any callable) instead; the marker, when present,
supplies its defaults::

    @pytest.mark.leak_budget("1 KiB", requests=200)
    def test_webhook(leak_check):
        leak_check(app, path="/webhook", body_size=65536, scheme="github", secret=SECRET)

Either way the test fails when the application lines still growing at the end keep more than the
budget per request, and the failure message names them: file:line, the source line, bytes and objects
per request. Bounded growth (a plateau) is listed but not counted. Nothing runs unless a test asks:
collecting the plugin costs an import, not a tracer.

Requests to an app run on a worker thread of their own, as under a server (and cheaper to trace
there); context variables follow, thread-locals do not. An app that needs the test's own thread --
a test database connection, say -- takes ``thread=False`` in the marker or the call.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from hmacguard.errors import ConfigurationError

if TYPE_CHECKING:
    from hmacguard.leaks import LeakReport, Recipe

# hmacguard.leaks (asyncio, tracemalloc, the findings catalogue) is imported when a test asks for a
# measurement, not when pytest loads its plugins: every test run in the environment pays for this module.

__all__ = ["LeakCheck", "failure_message", "parse_budget"]

MARKER = "leak_budget"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?)(b?)\s*$", re.IGNORECASE)
#: Options the marker and the fixture accept besides the budget itself.
_RUN_OPTIONS = ("requests", "rounds", "warmup", "min_bytes", "frames", "include", "exclude", "thread")


def parse_budget(value: int | float | str) -> float:
    """``"1 KiB"`` -> 1024, ``"2kb"`` -> 2000, ``512`` -> 512 (bytes per request)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigurationError(f"a leak budget cannot be negative: {value}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigurationError(f"a leak budget is a size like '1 KiB', not {value!r}")
    m = _SIZE.match(value)
    if not m or (m.group(3) and not m.group(2)):
        raise ConfigurationError(f"not a size: {value!r} (e.g. '1 KiB', '512 B', '2kb')")
    number, letter, binary = float(m.group(1)), m.group(2).lower(), bool(m.group(3))
    if not letter:
        return number
    power = "kmg".index(letter) + 1
    # "KiB" and a bare "K" are binary, as memory is usually counted; "KB" is decimal.
    base = 1024 if binary or not m.group(4) else 1000
    return float(number * base**power)


@dataclass
class LeakCheck:
    """The ``leak_check`` fixture: ``leak_check(app_or_callable, **recipe)`` -> LeakReport."""

    budget: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    reports: list[LeakReport] = field(default_factory=list, repr=False)

    def __call__(
        self,
        target: object,
        recipe: Recipe | None = None,
        *,
        budget: int | float | str | None = None,
        **kwargs: Any,
    ) -> LeakReport:
        from hmacguard.leaks import Recipe, find_leaks

        limit = self.budget if budget is None else parse_budget(budget)
        run = dict(self.options)
        run.update({k: kwargs.pop(k) for k in _RUN_OPTIONS if k in kwargs})
        if kwargs:
            if recipe is not None:
                raise ConfigurationError("give either a Recipe or recipe keywords, not both")
            recipe = Recipe(**kwargs)
        report = find_leaks(target, recipe, **run)
        self.reports.append(report)
        if report.bytes_per_request > limit:
            # No traceback: the message names the lines, and a traceback of this frame would show
            # the caller's keywords -- a signing secret among them.
            pytest.fail(failure_message(report, limit), pytrace=False)
        return report


def failure_message(report: LeakReport, budget: float) -> str:
    from hmacguard.leaks import format_bytes

    unit = report.unit
    lines = [
        f"hmacguard: {format_bytes(report.bytes_per_request)} retained per {unit}, over the budget "
        f"of {format_bytes(budget)} ({report.requests} {unit}s after {report.warmup} warm-up)",
    ]
    for site in report.growing:
        lines.append(f"  {site.where}  {site.source}")
        detail = (
            f"      {format_bytes(site.bytes_per_request)} and {site.objects_per_request:.1f} "
            f"objects per {unit}, still growing"
        )
        if site.how == "stored" and site.allocated_at:
            origin = ", ".join(f"{a.path}:{a.line}" for a, _ in site.allocated_at)
            detail += f" (stored here; allocated at {origin})"
        lines.append(detail)
    for site in report.plateaus:
        lines.append(
            f"  {site.where}  {site.source}\n      bounded: held at "
            f"{format_bytes(site.retained_bytes)} (not counted against the budget)"
        )
    if report.outside_bytes_per_request >= report.min_bytes:
        lines.append(
            f"  outside the application's frames: {format_bytes(report.outside_bytes_per_request)} per {unit}"
        )
    return "\n".join(lines)


def _marker_settings(node: pytest.Item) -> tuple[float, dict[str, Any]] | None:
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return None
    if len(marker.args) > 1:
        raise ConfigurationError(f"@pytest.mark.{MARKER} takes one budget argument")
    kwargs = dict(marker.kwargs)
    budget_value = marker.args[0] if marker.args else kwargs.pop("budget", 0)
    # ``calls=`` reads better than ``requests=`` when the marker repeats a plain test body.
    if "calls" in kwargs:
        kwargs["requests"] = kwargs.pop("calls")
    unknown = set(kwargs) - set(_RUN_OPTIONS)
    if unknown:
        raise ConfigurationError(f"@pytest.mark.{MARKER} got unknown options: {', '.join(sorted(unknown))}")
    return parse_budget(budget_value), kwargs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(budget, *, requests=200, rounds=8, warmup=None, min_bytes=32): "
        "fail when the test's code keeps more than `budget` (e.g. '1 KiB') per request or call; "
        "without the leak_check fixture the test body itself is repeated (hmacguard)",
    )


@pytest.fixture
def leak_check(request: pytest.FixtureRequest) -> LeakCheck:
    """Measure what an app (or callable) keeps per request; fail the test over budget."""
    settings = _marker_settings(request.node) if isinstance(request.node, pytest.Item) else None
    if settings is None:
        return LeakCheck()
    budget, options = settings
    return LeakCheck(budget=budget, options=options)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """With the marker and no ``leak_check`` fixture, the test body is the measured callable."""
    if "leak_check" in pyfuncitem.fixturenames:
        return None
    settings = _marker_settings(pyfuncitem)
    if settings is None:
        return None
    from hmacguard.leaks import find_leaks

    budget, options = settings
    argnames = pyfuncitem._fixtureinfo.argnames
    funcargs: Mapping[str, object] = pyfuncitem.funcargs
    body = functools.partial(pyfuncitem.obj, **{name: funcargs[name] for name in argnames})
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        functools.update_wrapper(body, pyfuncitem.obj)
    report = find_leaks(body, None, name=pyfuncitem.nodeid, interface="call", **options)
    if report.bytes_per_request > budget:
        pytest.fail(failure_message(report, budget), pytrace=False)
    return True
