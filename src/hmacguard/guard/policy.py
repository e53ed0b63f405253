"""The guard's decision core, shared by the WSGI and ASGI middleware and the framework integrations.

Sans-I/O: :meth:`Guard.process` is a generator that *asks* for I/O and never does any. It yields

- :class:`ReadBody` -- "give me up to ``size`` bytes of the body (``b""`` at its end), within
  ``timeout`` seconds"; a driver that times out throws :class:`~hmacguard.errors.BodyTimeout` in, and
  one whose client went away throws :class:`ClientDisconnected`;
- :class:`StoreCall` -- "call this (it may block on Redis: ``blocking``) and send me the result";
  exceptions it raises are thrown back in;

and finally returns an :class:`Accepted` (the verified body plus the rate-limit headers for the
response) or a :class:`Rejected` (a ready problem+json answer). A WSGI driver answers each request
with blocking calls, an ASGI driver with awaits; the order of the checks, and so the security, is
written once, here:

1. rate limits (before the body: nothing is read from a client that is over its budget);
2. headers: Content-Length, Content-Encoding, the cap, the signature header, the timestamp;
3. the body, chunk by chunk, under the cap and the read timeout;
4. the signature (every secret, constant time) and the timestamp again;
5. the replay store (only now: forged requests never reach it);
6. the bytes budget; and on any refusal after admission, the failure budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from hmacguard.errors import BadRequest, ConfigurationError, RequestRejected
from hmacguard.guard.problem import Problem, problem_for
from hmacguard.guard.ratelimit import RateLimiter, RateState
from hmacguard.guard.verifier import VerifiedBody, Verifier
from hmacguard.http import RequestHead

__all__ = [
    "Accepted",
    "ClientDisconnected",
    "Guard",
    "Outcome",
    "ReadBody",
    "Rejected",
    "StoreCall",
]


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
    """The request is verified: hand ``body`` to the application, add ``headers`` to its response."""

    body: VerifiedBody
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Rejected:
    """The request is refused: send ``problem`` and do not call the application."""

    problem: Problem
    error: RequestRejected


Outcome = Accepted | Rejected
Effect = ReadBody | StoreCall


def _compile_paths(paths: Iterable[str] | None) -> tuple[frozenset[str], tuple[str, ...]] | None:
    if paths is None:
        return None
    if isinstance(paths, str):
        paths = [paths]
    exact, prefixes = set(), []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"protected paths start with '/': {path!r}")
        if path.endswith("*"):
            prefixes.append(path[:-1])
        else:
            exact.add(path)
    if not exact and not prefixes:
        raise ConfigurationError("paths is empty: nothing would be protected (use None for all)")
    return frozenset(exact), tuple(prefixes)


class Guard:
    """Which requests to protect, and how: a :class:`Verifier` and an optional :class:`RateLimiter`.

    ``paths``: ``None`` (default) protects every request; otherwise exact paths (``"/webhook"``) and
    prefixes ending in ``*`` (``"/hooks/*"``). ``methods``: ``None`` (default) protects every method on
    those paths, which is safest -- a receiver never needs an unsigned request.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise ConfigurationError("verifier must be a hmacguard.Verifier")
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise ConfigurationError("rate_limiter must be a hmacguard.RateLimiter or None")
        self.verifier = verifier
        self.rate_limiter = rate_limiter
        self._paths = _compile_paths(paths)
        self._methods = None if methods is None else frozenset(m.upper() for m in methods)

    def protects(self, method: str, path: str) -> bool:
        """Whether a request must pass the guard before reaching the application."""
        if self._paths is None and self._methods is None:
            return True
        if self._methods is not None and method.upper() not in self._methods:
            return False
        if self._paths is None:
            return True
        exact, prefixes = self._paths
        return path in exact or any(path.startswith(p) for p in prefixes)

    def reject(
        self,
        error: RequestRejected,
        head: RequestHead | None = None,
        *,
        connection_header: bool = True,
    ) -> Rejected:
        """The ready answer for ``error`` (problem+json, rate-limit policy, Retry-After on 429)."""
        extra = self.rate_limiter.headers(None, error) if self.rate_limiter is not None else []
        problem = problem_for(
            error,
            instance=head.path if head is not None else None,
            extra_headers=extra,
            connection_header=connection_header,
        )
        return Rejected(problem, error)

    def process(
        self, head: RequestHead, *, connection_header: bool = True
    ) -> Generator[Effect, Any, Outcome]:
        """Decide one protected request; see the module docstring for the protocol."""
        limiter = self.rate_limiter
        verifier = self.verifier
        key: str | None = None
        state: RateState | None = None
        verification = None
        admitted = False
        # Stores that never block (in memory) are called right here: a round trip through the
        # driver is only worth it for one that may wait on the network.
        try:
            if limiter is not None:
                key = limiter.key_for(head)
                raw_length = head.headers.get("content-length")
                # Only a rough figure for the bytes budget; begin() refuses a malformed one with 400
                # and one over the cap with 413, so more than the cap is never charged up front.
                # isascii() first: "²" passes isdigit() but not int().
                declared = (
                    min(int(raw_length), verifier.max_body + 1)
                    if raw_length and raw_length.isascii() and raw_length.isdigit()
                    else None
                )

                def admit() -> RateState:
                    return limiter.admit(key or "", declared_bytes=declared)

                state = (yield StoreCall(admit, True)) if limiter.blocking else admit()
            admitted = True
            verification = verifier.begin(head.headers)
            while not verification.complete:
                chunk = yield ReadBody(verification.read_size, verification.time_left())
                verification.feed(chunk)
            body = verification.finish()
            store = verifier.replay
            if store is not None:
                if store.blocking:
                    yield StoreCall(lambda: verifier.reserve(verification), True)  # type: ignore[arg-type]
                else:
                    verifier.reserve(verification)
        except RequestRejected as error:
            if verification is not None:
                verification.abort()
            if limiter is not None and admitted and key is not None:
                received = verification.received if verification is not None else 0
                # The store failing now changes nothing about this answer.
                with contextlib.suppress(RequestRejected):
                    if limiter.blocking:
                        yield StoreCall(lambda: self._charge(limiter, key, received, failed=True), True)
                    else:
                        self._charge(limiter, key, received, failed=True)
            return self.reject(error, head, connection_header=connection_header)
        except BaseException:
            if verification is not None:
                verification.abort()
            raise
        headers: list[tuple[str, str]] = []
        if limiter is not None and key is not None:
            received = verification.received
            try:
                if limiter.blocking:
                    yield StoreCall(lambda: self._charge(limiter, key, received, failed=False), True)
                else:
                    self._charge(limiter, key, received, failed=False)
            except RequestRejected as error:
                body.close()
                return self.reject(error, head, connection_header=connection_header)
            headers = limiter.headers(state)
        return Accepted(body, headers)

    @staticmethod
    def _charge(limiter: RateLimiter, key: str, received: int, *, failed: bool) -> None:
        limiter.spend_bytes(key, received)
        if failed:
            limiter.record_failure(key)
