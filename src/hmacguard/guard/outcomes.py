"""What the decision core asks of its drivers and what it answers: effects and outcomes.

:mod:`hmacguard.guard.policy` yields the effects (:class:`ReadBody`, :class:`StoreCall`) and returns an
:class:`Outcome`; :mod:`hmacguard.guard.lane` returns the same :class:`Accepted`. Kept apart so that
both can build them without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hmacguard._mypyc import mypyc_attr
from hmacguard.errors import BadRequest, RequestRejected
from hmacguard.guard.problem import Problem
from hmacguard.guard.replay import Delivery
from hmacguard.guard.verifier import VerifiedBody

__all__ = [
    "Accepted",
    "ClientDisconnected",
    "Effect",
    "Outcome",
    "ReadBody",
    "Rejected",
    "StoreCall",
    "processed",
]


# Not a native class: its class attributes must override BadRequest's as Python's lookup sees them.
@mypyc_attr(native_class=False)
class ClientDisconnected(BadRequest):
    """The client went away before the body was complete (no one will read the answer)."""

    slug = "client-disconnected"
    title = "Client disconnected"
    close_connection = True


@dataclass(slots=True)
class ReadBody:
    """Effect: read up to ``size`` bytes of the body (``b""`` at the end), within ``timeout`` s."""

    size: int
    timeout: float | None


@dataclass(slots=True)
class StoreCall:
    """Effect: call ``func`` and send back its result; ``blocking`` if it may wait on the network."""

    func: Callable[[], Any]
    blocking: bool


@dataclass(slots=True)
class Accepted:
    """The request is verified: hand ``body`` to the application, add ``headers`` to its response,
    and settle ``delivery`` (when there is one) once the application has answered, with
    :func:`processed` of its status."""

    body: VerifiedBody
    headers: list[tuple[str, str]] = field(default_factory=list)
    delivery: Delivery | None = None


@dataclass(slots=True)
class Rejected:
    """The request is refused: send ``problem`` and do not call the application."""

    problem: Problem
    error: RequestRejected


Outcome = Accepted | Rejected


def processed(status: int | None) -> bool:
    """Whether the application processed a delivery, judged by the status it answered.

    ``None`` (no response started: the application raised, or the client left first) and 5xx mean
    it did not, and the sender's retry must be processed; anything below 500 means it did -- a 4xx
    is the application's own, final refusal.
    """
    return status is not None and status < 500


Effect = ReadBody | StoreCall
