"""What the verifier needs from a replay store: :class:`ReplayStore` and :class:`HoldingReplayStore`.

Kept apart from :mod:`hmacguard.guard.replay`, which holds the stores themselves, because that module
is compiled by mypyc (``hatch_build.py``) and mypyc cannot compile a ``runtime_checkable``
protocol. ``hmacguard.guard.replay`` re-exports both names: import them from there, as before.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["HoldingReplayStore", "ReplayStore"]


@runtime_checkable
class ReplayStore(Protocol):
    """What the verifier needs from a replay store."""

    #: Whether :meth:`reserve` may block on the network (the ASGI middleware then runs it in a
    #: worker thread instead of on the event loop).
    blocking: bool

    def reserve(self, key: str, ttl: float) -> bool:
        """Atomically record ``key`` for ``ttl`` seconds; ``True`` if it was not already there.

        Raises :class:`~hmacguard.errors.StoreUnavailable` when the store cannot answer (unless the
        store was configured fail-open, in which case it logs and returns ``True``).
        """
        ...


@runtime_checkable
class HoldingReplayStore(ReplayStore, Protocol):
    """A store with two-phase reservations (see the module docstring); both stores here are.

    A custom store that only has :meth:`reserve` still works: its reservations are permanent at once.
    Optional: ``extend(key, token, ttl) -> bool``, hold ``key`` under ``token`` for at least
    ``ttl`` seconds from now (``False`` when ``token`` no longer holds it) -- asked when a nested
    guard's application may run longer than an outer guard's hold lasts (both stores here have it;
    without it, that nested guard answers 409, see :meth:`Verifier.hold`).
    """

    def hold(self, key: str, ttl: float) -> str | None:
        """Atomically hold ``key`` for ``ttl`` seconds; a token if it was free, ``None`` if not.

        Fail-open stores return a token when they cannot answer (settling it later is harmless).
        """
        ...

    def commit(self, key: str, token: str, ttl: float) -> None:
        """Keep ``key`` for ``ttl`` seconds from now: the delivery was processed. A key already
        committed (by another hold of the same delivery, nested guards retaking a lapsed hold) is
        kept for the longer of the two, never shortened."""
        ...

    def release(self, key: str, token: str) -> None:
        """Forget ``key`` if ``token`` still holds it: the delivery was not processed."""
        ...
