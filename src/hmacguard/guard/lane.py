"""The single-read lane: the common small delivery accepted without the general path's machinery.

Most deliveries are a few hundred bytes with a plain ``Content-Length``, and most receivers run the
in-memory replay store and no rate limiter. For such a request the general path
(:meth:`~hmacguard.guard.policy.Guard.process`) still builds a generator, a request state machine and
an effect per step, which cost more than the HMAC itself. A driver (WSGI, ASGI) may instead ask
this lane first:

1. :meth:`SingleReadLane.length_taken` and :meth:`SingleReadLane.claim` -- before reading anything:
   is the request one the lane takes (a canonical ``Content-Length`` of 1 byte up to one chunk, no
   ``Content-Encoding``), and do its signature headers parse and its timestamp pass? Otherwise the
   driver runs the general path as if the lane did not exist (nothing has been read).
2. The driver reads once, under the body timeout (one ``wsgi.input.read`` of the declared length;
   one ``receive()``, whose message must hold the whole declared body).
3. :meth:`SingleReadLane.take` -- what the read gave, if it is the whole declared body: the
   body's signature (every secret, constant time), the timestamp and the body timeout again, then
   the replay hold: an :class:`Accepted`, or a :class:`Handoff` of the read to the general path.

The lane only ever *accepts*. Every refusal, and every request it does not take, is decided by the
general path, which the driver then runs with the bytes already read handed back as the first read,
the original start time (so the body timeout is not reset) and the clock reading the headers'
timestamp was judged at (so a timestamp that goes stale during the read does not change the
answer): the refusals, their answers, the failure bookkeeping and the decision reports are written
once, in ``policy.py``. The one exception is the replay store's refusal (409, 503), which is final:
asking the store again could turn a fail-closed 503 into a 200, so the driver answers it with
:meth:`Guard.refuse_from_lane` -- what the general path answers at that step when, as in the lane,
there is no rate limiter. The lane calls the
same helpers the general path does (:meth:`Verifier.fresh_macs`, :func:`signature_match`,
:meth:`Verifier.check_timestamp`, :meth:`Verifier.replay_key`, :meth:`Verifier.hold_key`) -- with
one secret, the MAC is copied and compared in place (``signature_match``'s own one-secret shortcut,
without building its list) -- and ``tests/guard/test_lane.py`` holds its outcome to the general
path's over every scheme, rotation, timestamp, framing and replay case.

It is open only when nothing it skips is needed: no rate limiter (admission comes before the body)
and a replay store that never blocks (or none). Watching decisions does not close it: when a sink
listens, the driver reports what the lane decided -- its acceptance
(:meth:`Guard.report_lane_acceptance`) or the store's final refusal (:meth:`Guard.refuse_from_lane`)
-- with the fields the general path would report (the differential tests compare them).
"""

from __future__ import annotations

import contextlib
import hmac
import io
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hmacguard.errors import RequestRejected
from hmacguard.guard.macs import Mac
from hmacguard.guard.outcomes import Accepted
from hmacguard.guard.replay import store_blocks
from hmacguard.guard.verifier import VerifiedBody, Verifier, signature_match
from hmacguard.schemes import SignatureClaim

if TYPE_CHECKING:
    from hmacguard.guard.ratelimit import RateLimiter

__all__ = ["Handoff", "SingleReadLane"]

_monotonic = time.monotonic
_BytesIO = io.BytesIO
_compare = hmac.compare_digest


class Handoff:
    """What the lane read -- what the server's read returned, or the exception it raised -- handed
    to the general path as its first read, with the ``time.monotonic()`` reading started at (the body timeout
    counts from it) and the clock reading the headers' timestamp was judged at."""

    __slots__ = ("checked_at", "result", "started")

    def __init__(self, result: object, started: float, checked_at: float) -> None:
        self.result = result
        self.started = started
        self.checked_at = checked_at


class SingleReadLane:
    """A :class:`~hmacguard.guard.policy.Guard`'s lane for small deliveries (see the module docstring).

    Built by the guard from its own configuration: its verifier and rate limiter.
    """

    __slots__ = ("_single", "_verifier", "limit", "open")

    def __init__(self, verifier: Verifier, rate_limiter: RateLimiter | None) -> None:
        store = verifier.replay
        self._verifier = verifier
        #: Largest declared body the lane takes: one read, kept as received (never past the cap).
        self.limit = min(verifier._whole_limit, verifier.max_body)
        #: Whether the lane may be used (see the module docstring).
        self.open = rate_limiter is None and (store is None or not store_blocks(store))
        # With one secret: the scheme's algorithm and its keyed, empty HMAC, to copy per request.
        self._single: tuple[str, Mac] | None = None
        algorithm = verifier.scheme.algorithm
        if len(verifier.keys) == 1:
            # A custom scheme naming a hash hmac lacks: none here, and each claim judged as before.
            with contextlib.suppress(ValueError):
                self._single = (algorithm, verifier.keyed_macs(algorithm)[0])

    def length_taken(self, raw_length: object, coded: bool) -> int:
        """The declared body length if the lane takes this framing, else 0.

        The lane takes a canonical ``Content-Length`` (ASCII digits, no sign, no list) of 1 byte up
        to :attr:`limit` and no ``Content-Encoding``; every other framing is judged by the general
        path. ``coded``: whether the request has a ``Content-Encoding`` header at all.
        """
        if coded or not (
            isinstance(raw_length, str)  # not text (a middleware breaking PEP 3333): not the lane's
            and raw_length
            and len(raw_length) < 10
            and raw_length.isdigit()
            and raw_length.isascii()
        ):
            return 0
        length = int(raw_length)
        return length if length <= self.limit else 0

    def claim(self, headers: Mapping[str, str], now: float) -> SignatureClaim | None:
        """The request's signature claim if the lane takes it, checked as the general path would.

        ``headers``: lower-cased names. The caller has checked the framing (:meth:`length_taken`).
        ``now``: the verifier's clock, at which a signed timestamp is judged -- the general path
        judges it at the same time when it decides this request after all
        (``Guard.process(checked_at=now)``).
        """
        try:
            return self._checked(self._verifier.scheme.parse(headers), now)
        except RequestRejected:
            return None  # the general path refuses it, with the right answer and bookkeeping

    def claim_environ(self, environ: Mapping[str, Any], now: float) -> SignatureClaim | None:
        """:meth:`claim` of a WSGI request, its headers read from ``environ``
        (:meth:`~hmacguard.schemes.Scheme.parse_environ`)."""
        verifier = self._verifier
        try:
            claim = verifier.scheme.parse_environ(environ)
            if claim.timestamp is not None or verifier._timestamped:  # as in _checked, one call less
                verifier.check_timestamp(claim, now=now)
        except RequestRejected:
            return None
        return claim

    def _checked(self, claim: SignatureClaim, now: float) -> SignatureClaim:
        verifier = self._verifier
        if claim.timestamp is not None or verifier._timestamped:
            verifier.check_timestamp(claim, now=now)
        return claim

    def take(
        self, claim: SignatureClaim, body: object, length: int, started: float, checked_at: float
    ) -> Accepted | Handoff:
        """The request accepted, its delivery held; or its read handed to the general path.

        ``body``: what the lane's one read returned (whatever the server gave: anything but
        ``bytes`` is handed over, and so typed ``object``, which the compiled build does not check),
        which started at ``started``
        (``time.monotonic()``); ``length``: the declared length (:meth:`length_taken`);
        ``checked_at``: the clock reading :meth:`claim` was given. Raises the replay store's refusal
        (409, or 503 from a store that cannot answer): that answer is final, and the store is not
        asked twice.
        """
        if type(body) is not bytes or len(body) != length:
            return Handoff(body, started, checked_at)  # not the whole declared body, as bytes
        verifier = self._verifier
        timeout = verifier.body_timeout
        # The same arithmetic as Verification.time_left (deadline, then what is left of it), so a
        # float boundary falls the same way on both paths.
        if timeout is not None and (started + timeout) - _monotonic() <= 0:
            return Handoff(body, started, checked_at)
        single = self._single
        if single is not None and claim.algorithm == single[0] and len(claim.signatures) == 1:
            # One secret, one claimed signature (the usual delivery): signature_match's own
            # shortcut, without building the list of MACs.
            mac = single[1].copy()
            if claim.prefix:
                mac.update(claim.prefix)
            mac.update(body)
            digest = mac.digest()
            if not _compare(digest, claim.signatures[0]):
                return Handoff(body, started, checked_at)
            match = 0
            earlier: tuple[str, ...] = ()
        else:
            macs = verifier.fresh_macs(claim)
            for mac in macs:
                mac.update(body)
            match, digest = signature_match(macs, claim.signatures)
            if match < 0:
                return Handoff(body, started, checked_at)
            earlier = verifier.earlier_keys(claim, macs)
        if claim.timestamp is not None:
            try:
                verifier.check_timestamp(claim)
            except RequestRejected:
                return Handoff(body, started, checked_at)
        delivery = (
            None
            if verifier.replay is None
            else verifier.hold_key(verifier.replay_key(claim, digest), earlier)
        )
        verified = VerifiedBody(
            _BytesIO(body), verifier.scheme.name, match, claim.timestamp, claim.message_id, len(body)
        )
        return Accepted(verified, [], delivery)
