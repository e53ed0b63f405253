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
5. the replay store (only now: forged requests never reach it): the delivery is *held* while the
   application runs, and the driver settles it afterwards -- committed when the application answered
   below 500, released when it raised, answered 5xx or the client left before a response started
   (:func:`processed`), so a failed delivery stays deliverable;
6. the bytes budget; and on any refusal after admission, the failure budget (a request in flight
   counts against it from admission, so concurrency cannot overrun it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any

from hmacguard.errors import ConfigurationError, RequestRejected
from hmacguard.guard.body import parse_content_length
from hmacguard.guard.breaker import noting_failures_open
from hmacguard.guard.decision import ACCEPTED, Decision, DecisionSink, DecisionSinks
from hmacguard.guard.lane import SingleReadLane
from hmacguard.guard.outcomes import (
    Accepted,
    ClientDisconnected,
    Effect,
    Outcome,
    ReadBody,
    Rejected,
    StoreCall,
    processed,
)
from hmacguard.guard.paths import ProtectedPaths
from hmacguard.guard.problem import problem_for
from hmacguard.guard.ratelimit import RateLimiter, RateState
from hmacguard.guard.replay import Delivery
from hmacguard.guard.verifier import OuterHold, Verification, VerifiedBody, Verifier
from hmacguard.http import RequestHead

__all__ = [
    "GUARD_KEY",
    "HOLD_KEY",
    "Accepted",
    "ClientDisconnected",
    "Guard",
    "Outcome",
    "ReadBody",
    "Rejected",
    "StoreCall",
    "outer_hold",
    "processed",
]


class Guard:
    """Which requests to protect, and how: a :class:`Verifier` and an optional :class:`RateLimiter`.

    ``paths``: ``None`` (default) protects every request; otherwise exact paths (``"/webhook"``) and
    prefixes ending in ``*`` (``"/hooks/*"``), matched on every spelling a router could route (the
    model in :mod:`hmacguard.guard.paths`). ``methods``: ``None`` (default) protects every method on
    those paths, which is safest -- a receiver never needs an unsigned request; a list of methods
    also covers ``HEAD`` when it names ``GET`` (frameworks route one to the other).
    ``on_decision``: a callable, or several, given a :class:`~hmacguard.guard.decision.Decision`
    for every protected request (see :mod:`hmacguard.guard.decision`; decisions are also logged
    at DEBUG on the ``hmacguard`` logger).
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
        on_decision: DecisionSink | Iterable[DecisionSink] | None = None,
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise ConfigurationError("verifier must be a hmacguard.Verifier")
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise ConfigurationError("rate_limiter must be a hmacguard.RateLimiter or None")
        self.verifier = verifier
        self.rate_limiter = rate_limiter
        self.sinks = DecisionSinks(on_decision)
        if verifier.memory_budget is not None:
            self.sinks.watch_budget(verifier.memory_budget)
        # Given to each delivery accepted while a sink listens for settle failures (none: nothing
        # set, nothing built per request).
        scheme = verifier.scheme.name
        settle_failed = self.sinks.settle_failed
        self._settle_report: Callable[[str], None] | None = (
            (lambda action: settle_failed(scheme, action)) if self.sinks.settle_listeners else None
        )
        #: The accept-only lane blocking drivers try first for a small delivery (guard/lane.py).
        self.lane = SingleReadLane(verifier, rate_limiter)
        self._paths = None if paths is None else ProtectedPaths(paths)
        #: Whether every request is protected (no paths, no methods): drivers skip the decision.
        self.protects_everything = paths is None and methods is None
        if methods is None:
            self._methods: frozenset[str] | None = None
        else:
            upper = {m.upper() for m in ([methods] if isinstance(methods, str) else methods)}
            self._methods = frozenset(upper | {"HEAD"} if "GET" in upper else upper)

    def protects(self, method: str, *paths: str, routed: Callable[[], bool] | None = None) -> bool:
        """Whether a request must pass the guard before reaching the application.

        ``paths``: the spellings the integration knows of the request's path (the path it routes
        on first, then e.g. the one with its mount prefix); any of them matching protects it.
        ``routed``: asked only when no spelling matches -- whether the framework would route the
        request to a protected view (Flask's matched endpoint, Django's resolved view); one that
        raises protects the request. Raises :class:`~hmacguard.errors.PathInvalid` for a path that
        cannot be interpreted.
        """
        if self._methods is not None and method.upper() not in self._methods:
            return False
        if self._paths is None or self._paths.matches(*paths):
            return True
        if routed is None:
            return False
        try:
            return bool(routed())
        except Exception:  # a router that cannot decide must not let the request through unguarded
            return True

    def reject(
        self,
        error: RequestRejected,
        head: RequestHead | None = None,
        *,
        connection_header: bool = True,
    ) -> Rejected:
        """The ready answer for ``error`` (problem+json, rate-limit policy, Retry-After on 429).

        Reported to the decision sinks, as one the guard took before reading anything (drivers
        call this for a path they cannot interpret; :meth:`process` reports its own).
        """
        if self.sinks.active:
            self._report(error.slug, error.status, head, None, 0, None, None, ())
        return self._answer(error, head, connection_header)

    def vouched(self, found: object, outer: object) -> VerifiedBody | None:
        """The body another guard verified -- ``found``, by the guard ``outer``, as an integration
        left them in the environ or scope -- if this guard takes it as its own verification:
        ``outer`` verified with this guard's very :class:`Verifier` (the same object: the same
        secrets, caps, tolerances, clock, replay store and TTLs, nothing to compare), and this
        guard's rate limiter, if it has one, is ``outer``'s. ``None`` otherwise: verify it again.

        Identity, not equality: comparing two verifiers' every option (and a custom scheme's state)
        to decide they are "at least as strict" was tried and got wrong in five ways by review
        (tests/guard/test_review_vouching.py). Equal verifiers built twice verify again, and
        :meth:`Verifier.hold` keeps their second hold from colliding with the first.
        """
        if not (isinstance(found, VerifiedBody) and isinstance(outer, Guard)):
            return None
        if outer.verifier is not self.verifier:
            return None
        if self.rate_limiter is not None and self.rate_limiter is not outer.rate_limiter:
            return None
        return found

    def watch_outer_settling(self, found: object) -> None:
        """This guard accepted a delivery that a guard around it holds (it vouched for that guard's
        verification, or that hold stands for its own): that guard settles it. If that guard has no
        sink listening for settle failures and this one has, a lost settle is reported here
        (``found``: the hold as the integration recorded it, ``HOLD_KEY``). One report either way."""
        if self._settle_report is not None:
            self._listen_for_settling(None, outer_hold(found))

    def _listen_for_settling(self, delivery: Delivery | None, outer: OuterHold | None) -> None:
        """Have a lost settle reported to this guard's listeners (there are some): ``delivery``'s,
        this guard's own hold; else, when it holds nothing because ``outer`` stands for it, that
        hold's -- unless the guard that took it has listeners of its own (one report either way)."""
        if delivery is not None:
            delivery.on_failure = self._settle_report
        elif outer is not None and outer.delivery.on_failure is None:
            outer.delivery.on_failure = self._settle_report

    def report_lane_acceptance(self, head: RequestHead, accepted: Accepted, started: float) -> None:
        """Report a delivery the single-read lane accepted, as the general path reports its own.

        Drivers call this when :attr:`sinks` are active; ``started`` is the ``time.monotonic()``
        reading the lane's read started at. The lane takes no rate limiter and no coded body, so
        the client is the socket peer and the bytes read are the body's.
        """
        body = accepted.body
        self._report(ACCEPTED, None, head, None, body.size, body.key_index, started, ())
        if accepted.delivery is not None and self._settle_report is not None:
            self._listen_for_settling(accepted.delivery, None)

    def refuse_from_lane(
        self,
        error: RequestRejected,
        head: RequestHead,
        bytes_read: int,
        started: float,
        *,
        connection_header: bool = True,
    ) -> Rejected:
        """The answer to the replay store's final refusal in the single-read lane (409, 503),
        reported as the general path reports it: ``bytes_read`` by the lane, since ``started``."""
        if self.sinks.active:
            self._report(error.slug, error.status, head, None, bytes_read, None, started, ())
        return self._answer(error, head, connection_header)

    def _answer(self, error: RequestRejected, head: RequestHead | None, connection_header: bool) -> Rejected:
        extra = self.rate_limiter.headers(None, error) if self.rate_limiter is not None else []
        problem = problem_for(
            error,
            instance=head.path if head is not None else None,
            extra_headers=extra,
            connection_header=connection_header,
        )
        return Rejected(problem, error)

    def _report(
        self,
        outcome: str,
        status: int | None,
        head: RequestHead | None,
        client: str | None,
        bytes_read: int,
        key_index: int | None,
        started: float | None,
        failed_open: list[str] | tuple[str, ...],
    ) -> None:
        self.sinks.emit(
            Decision(  # positional (Decision's order): keywords cost a dict per request
                outcome,
                status,
                self.verifier.scheme.name,
                head.path if head is not None else "",
                client if client is not None else (head.peer if head is not None else None),
                bytes_read,
                key_index,
                0.0 if started is None else time.monotonic() - started,
                tuple(failed_open),
            )
        )

    def process(
        self,
        head: RequestHead,
        *,
        connection_header: bool = True,
        body_started: float | None = None,
        checked_at: float | None = None,
        held_outside: OuterHold | None = None,
    ) -> Generator[Effect, Any, Outcome]:
        """Decide one protected request; see the module docstring for the protocol.

        When the driver tried the single-read lane first and hands its bytes back: ``body_started``,
        the ``time.monotonic()`` from which the body timeout counts, and ``checked_at``, the
        verifier's clock reading at which the lane judged the headers' timestamp (defaults: now).
        ``held_outside``: the hold a guard around this one took for this request, if any
        (:meth:`Verifier.hold`).
        """
        # Only timed when someone watches (a monotonic() read is a measurable part of a tiny request),
        # and only then are the stores that fail open noted for the report.
        started = time.monotonic() if self.sinks.active else None
        failed_open: list[str] | None = [] if started is not None else None

        def noted(func: Callable[[], Any]) -> Callable[[], Any]:
            """``func``, noting in ``failed_open`` the stores that fail open during it (when watched)."""
            return func if failed_open is None else noting_failures_open(failed_open, func)

        limiter = self.rate_limiter
        verifier = self.verifier
        client: str | None = None
        state: RateState | None = None  # admitted and not yet settled with the rate limiter
        verification: Verification | None = None
        delivery: Delivery | None = None
        # Stores that never block (in memory) are called right here: a round trip through the
        # driver is only worth it for one that may wait on the network.
        try:
            if limiter is not None:
                key = client = limiter.key_for(head)
                length = head.headers.get("content-length")
                declared = _declared_length(length, verifier.max_body)
                # A body of unknown length (chunked) may bring up to the cap.
                most = verifier.max_body if length is None else None

                def admit() -> RateState:
                    # Recorded here, not only sent back: a driver cancelled while this runs in a
                    # worker thread closes the generator, which must still see the admission to settle.
                    nonlocal state
                    state = limiter.admit(
                        key, declared_bytes=declared, most_bytes=most, longest=verifier.body_timeout
                    )
                    return state

                if limiter.blocking:
                    yield StoreCall(noted(admit), True)
                else:
                    noted(admit)()
            verification = verifier.begin(head.headers, started=body_started, now=checked_at)
            while not verification.complete:
                chunk = yield ReadBody(verification.read_size, verification.time_left())
                verification.feed(chunk)
            body = verification.finish()
            store = verifier.replay
            if store is not None:
                if store.blocking:
                    verified = verification

                    def hold() -> Delivery | None:
                        nonlocal delivery  # recorded here for the same reason as the admission
                        delivery = verifier.hold(verified, held_outside)
                        return delivery

                    yield StoreCall(noted(hold), True)
                else:
                    held = verification
                    delivery = noted(lambda: verifier.hold(held, held_outside))()
            headers: list[tuple[str, str]] = []
            if limiter is not None and state is not None:
                admitted, state = state, None  # settled exactly once, even if this raises
                received = verification.received
                settle = noted(lambda: limiter.settle(admitted, received, failed=False))
                yield from _call(settle, limiter.blocking)
                headers = limiter.headers(admitted)
            if started is not None:
                read = verification.received
                self._report(ACCEPTED, None, head, client, read, body.key_index, started, failed_open or ())
            if self._settle_report is not None:
                self._listen_for_settling(delivery, held_outside)
            return Accepted(body, headers, delivery)
        except RequestRejected as error:
            if verification is not None:
                verification.abort()
            # The store failing now changes nothing about this answer.
            with contextlib.suppress(RequestRejected):
                if delivery is not None:  # held, then refused by the bytes budget's store
                    undo = delivery
                    yield from _call(noted(lambda: undo.settle(False)), undo.blocking)
                if limiter is not None and state is not None:
                    failed, received = state, verification.received if verification is not None else 0
                    refund = noted(lambda: limiter.settle(failed, received, failed=True))
                    yield from _call(refund, limiter.blocking)
            if started is not None:
                read = verification.received if verification is not None else 0
                self._report(error.slug, error.status, head, client, read, None, started, failed_open or ())
            return self._answer(error, head, connection_header)
        except BaseException:
            # Closed mid-request (the driver's task was cancelled): undo without yielding again.
            if verification is not None:
                verification.abort()
            with contextlib.suppress(Exception):
                if delivery is not None:
                    delivery.settle(False)
                if limiter is not None and state is not None:
                    limiter.settle(state, verification.received if verification else 0, failed=True)
            raise


#: Where an integration leaves, beside the verified body, what a guard nested inside reads (the same
#: names in a WSGI environ and an ASGI scope): the Guard that verified (:meth:`Guard.vouched`), and
#: the ``(Delivery, Verifier)`` of the outermost guard holding the delivery (:func:`outer_hold`).
GUARD_KEY = "hmacguard.guard"
HOLD_KEY = "hmacguard.hold"


def outer_hold(found: object) -> OuterHold | None:
    """The hold a guard around this one took, as an integration left it in the environ or scope: a
    plain ``(delivery, verifier)`` pair there -- recorded for every held delivery, nested guards or
    not, so the cheapest thing to build -- made an :class:`OuterHold` here, when it is one."""
    if type(found) is tuple and len(found) == 2:
        delivery, verifier = found
        if isinstance(delivery, Delivery) and isinstance(verifier, Verifier):
            return OuterHold(delivery, verifier)
    return None


def _call(func: Callable[[], Any], blocking: bool) -> Generator[Effect, Any, Any]:
    """Call ``func`` here, or through the driver (``yield from``) when it may block."""
    if blocking:
        return (yield StoreCall(func, True))
    return func()


#: Longest Content-Length worth turning into a number; longer is malformed (begin() says 400).
_MAX_LENGTH_DIGITS = 19


def _declared_length(raw: str | None, max_body: int) -> int | None:
    """A rough figure for the bytes budget, before begin() validates the header.

    More than the cap is never charged up front (an oversized body gets its 413, not a 429), and
    no text reaches ``int()`` unless it is a short run of ASCII digits ("²" passes isdigit(), and
    thousands of digits make int() raise). Any other spelling begin() accepts -- a list of one
    value repeated, ``"60000, 60000"`` -- is read as begin() reads it (``parse_content_length``):
    taken for no length at all, it reserved one byte and let concurrent uploads past the bytes
    budget (tests/guard/test_review_inflight_rotation.py). One begin() refuses is ``None``.
    """
    if raw and len(raw) <= _MAX_LENGTH_DIGITS and raw.isascii() and raw.isdigit():
        return min(int(raw), max_body + 1)
    if raw is None:
        return None
    try:
        length = parse_content_length(raw)
    except RequestRejected:
        return None
    return None if length is None else min(length, max_body + 1)
