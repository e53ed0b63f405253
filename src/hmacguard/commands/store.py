"""``hmacguard store check URL``: the Redis the guard's stores will use, checked before they use it.

Exit status: 0 usable with no warning, 1 usable with warnings, 2 unusable (a
:class:`~hmacguard.errors.TargetError` or :class:`~hmacguard.errors.ConfigurationError`, one line).
"""

from __future__ import annotations

from hmacguard.commands.outcome import EXIT_CLEAN, EXIT_FINDINGS, Outcome
from hmacguard.guard.preflight import StoreCheck, check_store

__all__ = ["store_check"]


def store_check(url: str, *, timeout: float) -> Outcome[StoreCheck]:
    """Run the check; the outcome's status is 1 when it warns, else 0 (it raises when unusable)."""
    result = check_store(url, timeout=timeout)
    return Outcome(result, EXIT_FINDINGS if result.warnings else EXIT_CLEAN)
