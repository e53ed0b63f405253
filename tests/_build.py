"""Which build of the guard the tests run: pure Python, or compiled by mypyc (hatch_build.py).

The compiled build checks each compiled function's annotated argument types on entry, and takes a
``bool`` given for an ``int`` as 0 or 1. A public constructor in a compiled module therefore
answers some wrongly typed arguments with mypyc's ``TypeError`` rather than the guard's
``ConfigurationError`` (or takes ``True`` as 1). The tests of those cases carry
:func:`differs_when_compiled`: a strict xfail on the compiled build, so each difference stays
listed until it is removed. Compiled classes also refuse undeclared instance attributes (so
``mock.patch.object`` on an instance) and their compiled callers do not see a method patched onto
the class: tests that do either are skipped on the compiled build (:data:`COMPILED`).
"""

from __future__ import annotations

import pytest

import hmacguard.guard.lane

#: Whether the guard's hot path runs compiled (``make compiled``) or as Python (``make pure``).
COMPILED = not hmacguard.guard.lane.__file__.endswith(".py")


def differs_when_compiled(reason: str) -> pytest.MarkDecorator:
    """A strict xfail on the compiled build only, for a known difference (``reason``)."""
    return pytest.mark.xfail(COMPILED, strict=True, reason=f"compiled build (hatch_build.py): {reason}")
