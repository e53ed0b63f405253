"""Streaming HMAC verification under a hard body cap.

:class:`Verifier` is the configuration (immutable, shared by every request and thread);
:meth:`Verifier.begin` starts one request's :class:`Verification`, a sans-I/O state machine: the
caller reads the body however its server delivers it and feeds the chunks in. The order of checks is
the cheapest first, and nothing about the body is read until the headers pass:

1. ``Content-Length`` malformed, negative or listing different values -> 400; a ``Content-Encoding``
   other than gzip -> 415; a ``Content-Length`` above the cap -> 413, before a byte of the body.
2. The scheme's signature header(s) missing -> 400, malformed -> 400; a signed timestamp too old or
   too far in the future -> 400.
3. Each chunk is counted (the chunk that passes the cap -> 413, at once), fed to one HMAC per secret
   (all rotation secrets in the same single pass) and kept in a :class:`~hmacguard.guard.body.BoundedBody`
   (memory, then a temporary file). A gzip body is inflated under its own cap.
4. At the end: fewer or more bytes than ``Content-Length`` -> 400; no secret produces any of the
   claimed signatures (compared in constant time) -> 401; the timestamp, re-checked now that the
   body is in, has gone stale -> 400.

:meth:`Verifier.verify` and :meth:`Verifier.averify` drive a whole request (including the body read
timeout and the replay check) for callers that hold the body as bytes, a file or an iterator.
"""

from __future__ import annotations

import hmac
import io
import math
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from hmacguard._mypyc import mypyc_attr
from hmacguard.errors import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    ConfigurationError,
    ReplayDetected,
    SignatureMismatch,
    TimestampInvalid,
)
from hmacguard.guard.body import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_BODY,
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_SPOOL_THRESHOLD,
    BoundedBody,
    GzipInflater,
    MemoryBudget,
    content_coding,
    memory_budget_of,
    parse_content_length,
    validate_size,
)
from hmacguard.guard.macs import Mac, keyed_mac
from hmacguard.guard.replay import (
    Delivery,
    HoldingReplayStore,
    MemoryReplayStore,
    ReplayStore,
    Token,
    release_now,
    same_keys,
)
from hmacguard.http import lowered as lower_case
from hmacguard.schemes import Scheme, SignatureClaim, get_scheme, secret_list

__all__ = ["OuterHold", "Secret", "Verification", "VerifiedBody", "Verifier"]

Secret = str | bytes
#: Untimestamped schemes (github, generic) keep delivery ids this long by default.
DEFAULT_UNTIMESTAMPED_REPLAY_TTL = 24 * 3600.0
#: Schemes that sign a message id constant across attempts (standard-webhooks) keep it this long by
#: default: past the last retry of Svix's schedule (at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
#: 10 h -- about 27 h 35 min after the first attempt), so a retry of a processed delivery is refused
#: for as long as the sender retries, not only for the timestamp window.
DEFAULT_MESSAGE_ID_REPLAY_TTL = 28 * 3600.0
#: How long a delivery's key is held while the application processes it (see guard/replay.py).
DEFAULT_PENDING_TTL = 60.0


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class VerifiedBody:
    """A body whose signature has been verified: a binary file plus what was learned.

    ``file`` is what the integrations hand to the application (``wsgi.input``): a body that arrived
    in one read of at most one chunk is an :class:`io.BytesIO` over the bytes received (the usual
    small delivery; nothing to build, fill and walk in Python), any other a read-only
    :class:`~hmacguard.guard.body.BoundedBody` (in memory, or spooled to a temporary file). Both are
    seekable binary files. ``close()`` releases the memory or the temporary file, and the
    integrations call it when the request ends.
    """

    __slots__ = ("file", "key_index", "message_id", "scheme", "size", "timestamp")

    def __init__(
        self,
        file: BoundedBody | io.BytesIO,
        scheme: str,
        key_index: int,
        timestamp: int | None,
        message_id: str | None,
        size: int | None = None,
    ) -> None:
        # Positional-or-keyword, as before (the verifier passes them positionally: cheaper); ``size``
        # defaults to what the file holds.
        self.file = file
        if size is None:
            size = file.size if isinstance(file, BoundedBody) else len(file.getbuffer())
        #: Bytes in the (inflated) body.
        self.size = size
        self.scheme = scheme
        #: Which of the verifier's secrets matched (0 is the current one; more means a rotation is due).
        self.key_index = key_index
        self.timestamp = timestamp
        self.message_id = message_id

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def getvalue(self) -> bytes:
        """The whole body as bytes (bounded by the cap)."""
        return self.file.getvalue()

    def close(self) -> None:
        self.file.close()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def __enter__(self) -> VerifiedBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VerifiedBody {self.scheme} {self.size} bytes key={self.key_index}>"


@mypyc_attr(allow_interpreted_subclasses=True)
class Verification:
    """One request's verification in progress. Sans-I/O: it is fed chunks and never reads a socket.

    Drive it with ``while not v.complete: v.feed(read(v.read_size))`` (``b""`` at end of body), then
    :meth:`finish`. Any step may raise a :class:`~hmacguard.errors.RequestRejected`; after that, or
    when abandoning the request, call :meth:`abort` to release what was buffered.
    """

    __slots__ = (
        "_digest", "_eof", "_inflater", "_macs", "_result", "_verifier", "_whole", "body", "claim",
        "content_length", "deadline", "received",
    )  # fmt: skip

    def __init__(
        self,
        verifier: Verifier,
        claim: SignatureClaim,
        content_length: int | None,
        gzip: bool,
        started: float,
    ) -> None:
        self._verifier = verifier
        self.claim = claim
        self.content_length = content_length
        #: Body bytes received on the wire (compressed, when gzip).
        self.received = 0
        #: ``time.monotonic()`` value after which the body is too slow (``None``: no timeout).
        self.deadline = None if verifier.body_timeout is None else started + verifier.body_timeout
        self._macs = verifier.fresh_macs(claim)
        self._inflater = GzipInflater(limit=verifier.max_inflated_body) if gzip else None
        #: The buffer of a body that did not arrive whole in one read (built at its first chunk).
        self.body: BoundedBody | None = None
        #: A body that did (see feed()).
        self._whole: bytes | None = None
        self._eof = content_length == 0
        self._result: VerifiedBody | None = None
        self._digest = b""

    @property
    def complete(self) -> bool:
        """Whether the whole body has been received (never read past ``Content-Length``)."""
        return self._eof

    @property
    def read_size(self) -> int:
        """How many bytes to ask the server for next: one chunk, but never past what may come."""
        v = self._verifier
        if self.content_length is not None:
            return max(0, min(v.chunk_size, self.content_length - self.received))
        # One byte past the cap is enough to know the cap was passed.
        return max(1, min(v.chunk_size, v.max_body - self.received + 1))

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds left to receive the body (``None``: no timeout); raises 408 when none are."""
        if self.deadline is None:
            return None
        left = self.deadline - (time.monotonic() if now is None else now)
        if left <= 0:
            raise BodyTimeout("the request body arrived too slowly")
        return left

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed the next piece of the body; ``b""`` means the client finished sending it."""
        if self._eof:
            if chunk:
                raise BadRequest("body longer than Content-Length")
            return
        n = len(chunk)
        if not n:
            if self.content_length is not None and self.received != self.content_length:
                raise BadRequest("body shorter than Content-Length")
            self._eof = True
            return
        self.received += n
        if self.content_length is not None and self.received > self.content_length:
            raise BadRequest("body longer than Content-Length")
        if self.received > self._verifier.max_body:
            raise BodyTooLarge(
                f"body exceeds the {self._verifier.max_body}-byte limit",
                limit=self._verifier.max_body,
            )
        for mac in self._macs:
            mac.update(chunk)
        if (
            n == self.content_length
            and n <= self._verifier._whole_limit
            and self._inflater is None
            and type(chunk) is bytes
        ):
            # The whole declared body in the first read, the usual way of a small delivery: kept
            # as received and handed over as a BytesIO (finish()). Every check above and in
            # finish() is the same for it; only the buffer differs (tests/guard/test_fast_paths.py).
            self._whole = chunk
            self._eof = True
            return
        body = self.body
        if body is None:
            body = self.body = self._new_body()
        if self._inflater is None:
            body.append(chunk)
        else:
            for piece in self._inflater.feed(bytes(chunk)):
                body.append(piece)
        if self.content_length is not None and self.received == self.content_length:
            self._eof = True

    def _new_body(self) -> BoundedBody:
        v = self._verifier
        limit = v.max_body if self._inflater is None else v.max_inflated_body
        return BoundedBody(limit=limit, spool_threshold=v.spool_threshold, budget=v.memory_budget)

    def finish(self, *, now: float | None = None) -> VerifiedBody:
        """Check the signature (constant time, every secret) and the timestamp again."""
        if self._result is not None:
            return self._result
        if not self._eof:
            self.feed(b"")
        # A body that arrived whole, but late (a drip inside one blocking read), is still too slow.
        self.time_left()
        if self._inflater is not None:
            if self.body is None:
                self.body = self._new_body()
            for piece in self._inflater.finish():
                self.body.append(piece)
        match, self._digest = signature_match(self._macs, self.claim.signatures)
        if match < 0:
            raise SignatureMismatch("no configured secret produces the request's signature")
        claim = self.claim
        if claim.timestamp is not None:
            self._verifier.check_timestamp(claim, now=now)
        body = self.body
        if body is None:  # the body arrived in one read, or is empty
            whole = self._whole if self._whole is not None else b""
            file: BoundedBody | io.BytesIO = io.BytesIO(whole)
            size = len(whole)
        else:
            body.seal()
            file, size = body, body.size
        self._result = VerifiedBody(
            file, self._verifier.scheme.name, match, claim.timestamp, claim.message_id, size
        )
        return self._result

    @property
    def replay_key(self) -> str | None:
        """The key to reserve in the replay store, once :meth:`finish` has succeeded.

        The message id when the scheme signs it (standard-webhooks); otherwise the digest we
        computed ourselves under the current (first) secret, which covers the timestamp when there
        is one -- the same key whichever configured secret the request's signature matched.
        Neither the header's own list of signatures (an attacker can reorder it or add a junk entry)
        nor GitHub's unsigned ``X-GitHub-Delivery`` would do: either could make a replay look new.
        """
        if self._result is None:
            return None
        return self._verifier.replay_key(self.claim, self._digest)

    @property
    def earlier_replay_keys(self) -> tuple[str, ...]:
        """The request's keys under the other configured secrets (see :meth:`Verifier.earlier_keys`);
        empty until :meth:`finish` has succeeded."""
        if self._result is None:
            return ()
        return self._verifier.earlier_keys(self.claim, self._macs)

    def abort(self) -> None:
        """Release the body, verified or not: the request is refused or abandoned (idempotent)."""
        self._whole = None
        if self.body is not None:
            self.body.close()
        if self._result is not None:
            self._result.close()


_compare = hmac.compare_digest


def signature_match(macs: Sequence[Mac], signatures: Sequence[bytes]) -> tuple[int, bytes]:
    """Which secret's HMAC (index, -1 for none) produces one of the claimed signatures, and the
    content's digest under the current (first) secret, whichever secret matched (``b""`` for none).

    Every candidate is compared against every secret without stopping at the first match, in
    constant time, so the time taken says nothing about which secret (or which listed signature)
    matched. The digest returned is the replay key's: it must depend on the signed content alone.
    The matched secret's digest would not -- a sender signing with the new and the old secret
    during a roll (Stripe sends a ``v1`` for each) lets whoever holds the delivery strip the new
    signature and replay it under the old one, a second key for the same content.
    """
    if len(macs) == 1 and len(signatures) == 1:
        # One secret, one claimed signature (the usual delivery): the loop below, unrolled.
        digest = macs[0].digest()
        return (0, digest) if _compare(digest, signatures[0]) else (-1, b"")
    match = -1
    current = b""
    for index, mac in enumerate(macs):
        digest = mac.digest()
        if index == 0:
            current = digest
        for claimed in signatures:
            if _compare(digest, claimed) and match < 0:
                match = index
    return match, (current if match >= 0 else b"")


@mypyc_attr(allow_interpreted_subclasses=True)
class Verifier:
    """Verifies signed request bodies; one instance serves every request (it holds no request state).

    Keyword-only configuration, validated here (mistakes raise
    :class:`~hmacguard.errors.ConfigurationError` at start-up, not at the first request):

    - ``scheme``: a name from :data:`hmacguard.schemes.SCHEME_NAMES` or a :class:`Scheme` instance.
    - ``secrets``: one secret or several for rotation; all are tried in a single pass over the body,
      and the first one is the current one (see ``VerifiedBody.key_index``).
    - ``max_body``: hard cap on the body as received (default 1 MiB). ``max_inflated_body``: cap on a
      gzip body once inflated (default ``max_body``); ``allow_gzip=False`` answers gzip with 415.
    - ``spool_threshold``: bodies above it (and below the cap) go to a temporary file.
    - ``memory_budget``: the bytes of bodies every request of the process may hold in memory at
      once (default 64 MiB; a :class:`~hmacguard.guard.body.MemoryBudget` to share one between
      verifiers; ``None``: no budget). A body that would pass it goes to its temporary file.
    - ``chunk_size``: how much the drivers read at a time.
    - ``tolerance`` / ``future_tolerance``: how old, and how far ahead of our clock, a signed
      timestamp may be, in seconds. Checked before the body and again after it.
    - ``body_timeout``: seconds allowed for the whole body to arrive (``None``: no limit) -> 408.
    - ``replay``: ``"memory"`` (default, a per-process :class:`MemoryReplayStore`), any
      :class:`ReplayStore` (e.g. :class:`RedisReplayStore`), or ``None`` to turn replay protection off.
      ``replay_ttl``: how long keys are kept (default: the timestamp window; 24 h for schemes that
      sign no timestamp; 28 h for those that sign a message id, standard-webhooks).
      ``replay_pending_ttl``: how long the integrations hold a key while the application processes
      the delivery (default 60 s; see :mod:`hmacguard.guard.replay`): a worker that dies
      mid-request blocks the delivery's retries no longer than that.
    """

    def __init__(
        self,
        scheme: str | Scheme = "github",
        *,
        secrets: Secret | Sequence[Secret],
        max_body: int = DEFAULT_MAX_BODY,
        max_inflated_body: int | None = None,
        allow_gzip: bool = True,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        memory_budget: int | MemoryBudget | None = DEFAULT_MEMORY_BUDGET,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        tolerance: float = 300.0,
        future_tolerance: float = 60.0,
        body_timeout: float | None = 30.0,
        replay: ReplayStore | Literal["memory"] | None = "memory",
        replay_ttl: float | None = None,
        replay_pending_ttl: float = DEFAULT_PENDING_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scheme = get_scheme(scheme)
        #: HMAC keys, one per secret, current first.
        self.keys: tuple[bytes, ...] = tuple(self.scheme.key(s) for s in secret_list(secrets))
        #: The indexes of :attr:`keys` after the first that are not a repeat of an earlier one: the
        #: secrets whose digests are a delivery's earlier keys (a repeated key's would be the very
        #: key already held for it, and refuse every delivery -- :meth:`earlier_keys`).
        self._earlier_indexes = tuple(
            i for i in range(1, len(self.keys)) if self.keys[i] not in self.keys[:i]
        )
        self.max_body = validate_size("max_body", max_body)
        self.max_inflated_body = validate_size(
            "max_inflated_body", max_body if max_inflated_body is None else max_inflated_body
        )
        self.allow_gzip = bool(allow_gzip)
        self.spool_threshold = validate_size("spool_threshold", spool_threshold, minimum=0)
        #: Counts the bodies this verifier holds in memory (see MemoryBudget); ``None``: unbounded.
        self.memory_budget = memory_budget_of(memory_budget)
        self.chunk_size = validate_size("chunk_size", chunk_size)
        #: The largest body kept as the one chunk it arrived in (never more than a chunk: iterating
        #: a BytesIO yields lines as long as the body, a BoundedBody at most a chunk).
        self._whole_limit = min(self.chunk_size, self.spool_threshold)
        for name, value in (("tolerance", tolerance), ("future_tolerance", future_tolerance)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative number of seconds")
        self.tolerance = float(tolerance)
        self.future_tolerance = float(future_tolerance)
        if body_timeout is not None and (isinstance(body_timeout, bool) or body_timeout <= 0):
            raise ConfigurationError("body_timeout must be a positive number of seconds or None")
        self.body_timeout = None if body_timeout is None else float(body_timeout)
        if replay == "memory":
            self.replay: ReplayStore | None = MemoryReplayStore()
        elif replay is None or isinstance(replay, ReplayStore):
            self.replay = replay
        else:
            raise ConfigurationError(f"replay must be 'memory', a ReplayStore or None, not {replay!r}")
        if replay_ttl is None:
            if self.scheme.signs_message_id:
                # Each retry is signed anew with a fresh timestamp but the same id: the timestamp
                # window would let a retry of a processed delivery through once it lapsed.
                replay_ttl = max(DEFAULT_MESSAGE_ID_REPLAY_TTL, self.tolerance + self.future_tolerance + 1.0)
            elif self.scheme.timestamped:
                # A replayed request older than the tolerance is refused by its timestamp anyway.
                replay_ttl = self.tolerance + self.future_tolerance + 1.0
            else:
                replay_ttl = DEFAULT_UNTIMESTAMPED_REPLAY_TTL
        for name, value in (("replay_ttl", replay_ttl), ("replay_pending_ttl", replay_pending_ttl)):
            # Finite: NaN compares false with everything (every hold would lapse at once), and an
            # infinite TTL has no milliseconds to give Redis.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
        self.replay_ttl = float(replay_ttl)
        self.replay_pending_ttl = float(replay_pending_ttl)
        # Two-phase holds when the store has them; a reserve-only custom store keeps keys at once.
        self._holds = isinstance(self.replay, HoldingReplayStore)
        self.clock = clock
        self._keyed: dict[str, tuple[Mac, ...]] = {}
        self._digest_key_prefix = f"{self.scheme.name}:sig:"
        self._timestamped = self.scheme.timestamped

    def keyed_macs(self, algorithm: str) -> tuple[Mac, ...]:
        """One keyed, empty HMAC per secret (current first), to ``copy()`` for each request."""
        macs = self._keyed.get(algorithm)
        if macs is None:
            macs = tuple(keyed_mac(key, algorithm) for key in self.keys)
            self._keyed[algorithm] = macs
        return macs

    def fresh_macs(self, claim: SignatureClaim) -> list[Mac]:
        """One request's HMACs, one per secret, already fed the claim's signed prefix."""
        # Copying a keyed HMAC costs less than keying a new one (no key padding, no two hash inits).
        bases = self._keyed.get(claim.algorithm) or self.keyed_macs(claim.algorithm)
        macs = [bases[0].copy()] if len(bases) == 1 else [base.copy() for base in bases]
        if claim.prefix:
            for mac in macs:
                mac.update(claim.prefix)
        return macs

    def replay_key(self, claim: SignatureClaim, digest: bytes) -> str:
        """The replay key of a verified request (see :attr:`Verification.replay_key` for why)."""
        if claim.message_id is not None and self.scheme.signs_message_id:
            return f"{self.scheme.name}:id:{claim.message_id}"
        return self._digest_key_prefix + digest[:16].hex()

    def earlier_keys(self, claim: SignatureClaim, macs: Sequence[Mac]) -> tuple[str, ...]:
        """The keys the same content has under the other secrets (``macs``: one per secret, fed the
        whole request, current first) -- a delivery one of them keyed while it was current.

        The current secret's key alone changes when the receiver rotates (a new secret put first):
        a delivery processed under the old order would be new under the next one. So a delivery is
        held under the current key and refused when any earlier key is taken (:meth:`hold_key`).
        A message id is one key whatever the secret: none then.
        A secret listed twice (or as text and as bytes) is one key: counted once.
        """
        if len(macs) < 2 or (claim.message_id is not None and self.scheme.signs_message_id):
            return ()
        prefix = self._digest_key_prefix
        return tuple(prefix + macs[i].digest()[:16].hex() for i in self._earlier_indexes)

    def __repr__(self) -> str:
        return (
            f"Verifier({self.scheme.name!r}, secrets=<{len(self.keys)}>, max_body={self.max_body}, "
            f"replay={type(self.replay).__name__ if self.replay is not None else None})"
        )

    # -- the sans-I/O steps ------------------------------------------------------------------------
    def begin(
        self, headers: Mapping[str, str], *, started: float | None = None, now: float | None = None
    ) -> Verification:
        """Check the headers and start one request's verification (nothing of the body is read).

        ``headers`` may use any case. ``started`` is the ``time.monotonic()`` at which the request
        arrived (default: now), from which the body timeout counts; ``now`` the :attr:`clock` reading
        at which a signed timestamp is judged (default: now).
        """
        lowered = lower_case(headers)
        raw_length = lowered.get("content-length")
        # The canonical form (short ASCII digits) is the common case; parse_content_length judges
        # every other one.
        if raw_length is not None and len(raw_length) < 19 and raw_length.isdigit() and raw_length.isascii():
            length: int | None = int(raw_length)
        else:
            length = parse_content_length(raw_length)
        raw_coding = lowered.get("content-encoding")
        gzip = raw_coding is not None and content_coding(raw_coding, allow_gzip=self.allow_gzip) == "gzip"
        if length is not None and length > self.max_body:
            raise BodyTooLarge(
                f"Content-Length {length} exceeds the {self.max_body}-byte limit",
                limit=self.max_body,
            )
        claim = self.scheme.parse(lowered)
        if claim.timestamp is not None or self._timestamped:
            self.check_timestamp(claim, now=now)
        return Verification(
            self, claim, length, gzip, time.monotonic() if started is None else started
        )  # positional: keyword arguments cost a dict unpacking per request

    def check_timestamp(self, claim: SignatureClaim, *, now: float | None = None) -> None:
        """Refuse a signed timestamp too old or too far ahead (400); no-op for untimestamped schemes."""
        if claim.timestamp is None:
            if self.scheme.timestamped:
                raise TimestampInvalid("the signature carries no timestamp")
            return
        now = self.clock() if now is None else now
        if claim.timestamp < now - self.tolerance:
            raise TimestampInvalid("the signed timestamp is too old")
        if claim.timestamp > now + self.future_tolerance:
            raise TimestampInvalid("the signed timestamp is too far in the future")

    def reserve(self, verification: Verification) -> None:
        """Record a verified request's replay key for good; 409 if it was seen before (no store: no-op).

        Only call this after :meth:`Verification.finish` succeeded: reserving before the signature
        is known good would let forged requests burn legitimate delivery ids. The integrations use
        :meth:`hold` instead, so that a delivery the application failed to process can be retried.
        """
        key = verification.replay_key
        if self.replay is None or key is None:
            return
        earlier = verification.earlier_replay_keys
        if earlier and self._holds:
            # Held together, then kept: a refusal for an earlier key undoes the current one. Reserved
            # one by one, two copies verified at once under two orders each kept its current key and
            # found the other's taken -- both refused, and the sender's retry too, for the replay TTL.
            delivery = self.hold_key(key, earlier)
            if delivery is not None:
                delivery.keep()
            return
        self._reserve_key(self.replay, key)
        for other in earlier:
            self._reserve_key(self.replay, other)

    def _reserve_key(self, store: ReplayStore, key: str) -> None:
        # Called as a plain callable: a custom store may answer any truthy or falsy value (1, 0,
        # None), which pure Python took as they are and the compiled build would cast to bool.
        reserve: Callable[[str, float], object] = store.reserve
        if not reserve(key, self.replay_ttl):
            raise ReplayDetected("this delivery was already received")

    def hold(self, verification: Verification, outer: OuterHold | None = None) -> Delivery | None:
        """Hold a verified request's replay key while the application runs; 409 if it is taken.

        Returns the :class:`~hmacguard.guard.replay.Delivery` to settle when the application has
        answered, or ``None`` when there is nothing to settle (no store, or a reserve-only store,
        whose key is then kept for good at once).

        ``outer``: the hold a guard around this one took for the same request (nested guards that
        verify separately). When this key is taken *by that very hold* -- the same key, in a store
        holding the same keys, still under its token -- and that guard holds it while the
        application runs at least as long as this one would (:meth:`OuterHold.covers`), the request
        is not a replay: nothing more is held, and the outer guard settles it -- committing the key
        for this guard's ``replay_ttl`` when that is the longer (a hold covered by the timestamp
        window alone is not enough for a scheme whose retries are re-signed with the same message
        id, tests/guard/test_review_inflight_rotation.py). Otherwise the 409 stands (and the outer
        guard, seeing an answer below 500, commits the delivery -- a loss, for a store the guards
        cannot tell is shared or a custom store without ``extend``: give a nested guard a replay
        store of its own).
        """
        key = verification.replay_key
        if key is None:
            return None
        earlier = verification.earlier_replay_keys
        try:
            return self.hold_key(key, earlier, outer)
        except ReplayDetected:
            if outer is None:
                raise
            if outer.covers(self, key):
                outer.keep_for(self, key)
                if earlier:  # the outer guard may not know this guard's other secrets
                    self._hold_earlier_for(outer, earlier)
                return None
            if _held_for_this_request(outer, self.replay, key) is None:
                raise
        # Held for this very request, but the hold lapsed between the two questions: the key may
        # be free now -- hold it here (once), or it was taken meanwhile, and this is a replay. (A
        # 409 here would have the outer guard commit a delivery nobody processed.) hold_key keeps
        # it as long as the lapsed hold would have been kept.
        return self.hold_key(key, earlier, outer)

    def hold_key(
        self, key: str, earlier: Sequence[str] = (), outer: OuterHold | None = None
    ) -> Delivery | None:
        """Hold replay ``key`` (see :meth:`hold`); the one place a hold is taken.

        ``earlier``: the same content's keys under the other secrets (:meth:`earlier_keys`); any
        of them taken is a replay too. They are held with ``key`` and settled with it (a
        reserve-only store keeps them at once), so that a receiver still on the earlier order -- the
        other half of a rolling deploy -- finds this delivery under its own current key. One held by
        ``outer`` for this very request is no replay (and stays the outer guard's to settle).
        """
        store = self.replay
        if store is None:
            return None
        if not self._holds:
            self._reserve_key(store, key)
            for other in earlier:
                self._reserve_key(store, other)
            return None
        # Any: a custom store's token is whatever it hands out (an int counter, bytes...), given back
        # to it as it was; the compiled build would cast it to str (hatch_build.py).
        holding: Any = store
        token: Token | None = holding.hold(key, self.replay_pending_ttl)
        if token is None:
            raise ReplayDetected("this delivery was already received")
        delivery = Delivery(holding, key, token, self.replay_ttl)
        if earlier:
            try:
                self._hold_earlier(delivery, earlier, outer)
            except BaseException:
                delivery.undo()  # a replay, or a store that failed: release what was held
                raise
        if outer is not None and same_keys(outer.delivery.store, store):
            # Every key held around this guard for this request, for a guard further inside (the
            # environ records only the innermost hold): it may find any of them taken -- and with
            # each, the delivery that settles it, which must then keep it long enough.
            # A key this delivery holds itself is not inherited: its own hold is the live one (it
            # took it after the outer hold of it lapsed), and a guard further inside must find that.
            outer_held = outer.delivery
            own = {key, *(held for held, _ in delivery.also or ())}
            for held in own:
                if outer_held.token_for(held) is not None:
                    # Held for this very request around this guard, found free: that hold lapsed
                    # (every hold of the request's short pending time lapses at once, or between
                    # finding it and extending it), and this delivery took the key again -- kept as
                    # long as the lapsed one would have been (its commit of the old token will find
                    # this one's and leave it). The one place a retake by a new delivery is kept.
                    delivery.ttl = max(delivery.ttl, outer_held.owner_of(held).ttl)
            for held, token in ((outer_held.key, outer_held.token), *(outer_held.also or ())):
                if held not in own:
                    delivery.inherit(held, token, outer_held)
            for held, token in outer_held.outer_keys or ():
                if held not in own:
                    delivery.inherit(held, token, outer_held.owner_of(held))
        return delivery

    def _hold_earlier_for(self, outer: OuterHold, keys: Sequence[str]) -> None:
        """:meth:`_hold_earlier` when the outer guard's hold stands for this guard's current key:
        the earlier keys the outer hold lacks are held here and given to it to settle (it settles
        the delivery); any taken by another request is a replay, and what was held here is undone.
        A key held for this very request whose hold lapsed is taken again the same way, and the
        outer delivery holds it under the new token from then on (:meth:`Delivery.retaken`)."""
        delivery = outer.delivery
        store: Any = delivery.store  # its tokens as they are (see hold_key)
        held_here: list[tuple[str, Token]] = []
        retaken: list[tuple[str, Token]] = []
        try:
            for other in keys:
                was_held = delivery.token_for(other) is not None
                if was_held and outer.covers(self, other):
                    outer.keep_for(self, other)  # held around this guard for this very request
                    continue
                # Not held for this request, or its hold lapsed meanwhile: free now, or a replay.
                token = store.hold(other, self.replay_pending_ttl)
                if token is None:
                    raise ReplayDetected("this delivery was already received (under an earlier secret)")
                (retaken if was_held else held_here).append((other, token))
        except BaseException:
            release_now(store, [*held_here, *retaken])
            raise
        if held_here:
            delivery.also = [*(delivery.also or ()), *held_here]
            delivery.ttl = max(delivery.ttl, self.replay_ttl)  # it commits them
        for other, token in retaken:
            delivery.retaken(other, token, self.replay_ttl)

    def _hold_earlier(self, delivery: Delivery, keys: Sequence[str], outer: OuterHold | None) -> None:
        store: Any = delivery.store  # its tokens as they are (see hold_key)
        for other in keys:
            token = store.hold(other, self.replay_pending_ttl)
            held = None if token is not None or outer is None else _held_for_this_request(outer, store, other)
            if held is not None:  # taken by the guards around this one, for this very request
                assert outer is not None
                if outer.covers(self, other):
                    outer.keep_for(self, other)
                    delivery.inherit(other, held, outer.delivery.owner_of(other))  # for guards inside
                    continue
                # That hold lapsed between the two questions: free now (taken here, once, and
                # kept by hold_key as long as the lapsed hold would have been), or a replay.
                token = store.hold(other, self.replay_pending_ttl)
            if token is None:
                raise ReplayDetected("this delivery was already received (under an earlier secret)")
            if delivery.also is None:
                delivery.also = []
            delivery.also.append((other, token))

    # -- whole-request drivers ---------------------------------------------------------------------
    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes | _Readable | Iterable[bytes],
    ) -> VerifiedBody:
        """Verify a whole request whose body is bytes, a binary file, or an iterable of chunks.

        Reads at most one chunk past the cap, checks the body timeout between reads, checks replay.
        Raises a :class:`~hmacguard.errors.RequestRejected`; the caller closes the result.
        """
        verification = self.begin(headers)
        try:
            if isinstance(body, (bytes, bytearray, memoryview)):
                verification.feed(body)
                verification.feed(b"")
            elif hasattr(body, "read"):
                reader: _Readable = body  # type: ignore[assignment]
                while not verification.complete:
                    verification.time_left()
                    verification.feed(reader.read(verification.read_size))
            else:
                for chunk in body:  # type: ignore[union-attr]
                    verification.time_left()
                    verification.feed(chunk)
                    if verification.complete:
                        break
            result = verification.finish()
            self.reserve(verification)
        except BaseException:
            verification.abort()
            raise
        return result

    async def averify(self, headers: Mapping[str, str], body: bytes | AsyncIterable[bytes]) -> VerifiedBody:
        """Like :meth:`verify`, for a body that arrives as an async iterable of chunks.

        The replay store is called directly: with a blocking store (Redis) on an event loop, prefer
        the ASGI middleware, which runs it in a worker thread.
        """
        verification = self.begin(headers)
        try:
            if isinstance(body, (bytes, bytearray, memoryview)):
                verification.feed(body)
            else:
                async for chunk in body:
                    verification.time_left()
                    verification.feed(chunk)
                    if verification.complete:
                        break
            verification.feed(b"")
            result = verification.finish()
            self.reserve(verification)
        except BaseException:
            verification.abort()
            raise
        return result


def _held_for_this_request(outer: OuterHold, store: ReplayStore | None, key: str) -> Token | None:
    """The token under which the guards around this one hold (or held: the hold may have lapsed)
    ``key`` for this very request, in a store holding the same keys as ``store``; ``None`` when
    they do not -- a key found taken there is somebody else's."""
    if not same_keys(outer.delivery.store, store):
        return None
    return outer.delivery.token_for(key)


class OuterHold(NamedTuple):
    """The hold a guard around this one took for the same request, and that guard's verifier."""

    delivery: Delivery
    verifier: Verifier

    def keep_for(self, inner: Verifier, key: str) -> None:
        """This hold of ``key`` stands for ``inner``'s: have whichever delivery settles ``key`` --
        this one, or for a key it inherited, the one further out that took it -- commit it for
        ``inner``'s ``replay_ttl`` when that is the longer (a hold covered by the timestamp window
        alone is not enough for a scheme whose retries are re-signed with the same message id).
        Raising this delivery's TTL for an inherited key kept it for the outermost guard's TTL
        (tests/guard/test_review_evicted.py, three nested guards)."""
        owner = self.delivery.owner_of(key)
        if owner.ttl < inner.replay_ttl:
            owner.ttl = inner.replay_ttl

    def covers(self, inner: Verifier, key: str) -> bool:
        """Whether this hold of ``key`` -- one of the keys held for this very request, by this
        delivery or one further out -- stands for ``inner``'s own: the same key in a store holding
        the same keys, still held under its token, and held while the application runs at least as
        long as ``inner`` would hold it. The store is asked to make it so (``extend`` under the
        token: never shorter, ``False`` once the hold has lapsed or been settled), every time: the
        pending time a key was held for is not known here (a key of :attr:`Delivery.also` may have
        been held by a guard in between, for its own, shorter time). Asked with the store's own
        outage semantics: a fail-closed store that cannot answer raises (503), a fail-open one
        passes. A store without ``extend``: covered only by a hold this delivery took itself, with
        this verifier's pending time at least ``inner``'s. How long the key is kept afterwards does
        not matter: whoever finds it covering calls :meth:`keep_for`. (tests/guard/
        test_review_vouching.py, test_review_evicted.py, test_review_extend.py hold the cases.)"""
        delivery = self.delivery
        if not same_keys(delivery.store, inner.replay):
            return False
        owner = delivery.owner_of(key)
        if getattr(delivery.store, "extend", None) is not None:
            return owner.hold_longer(key, inner.replay_pending_ttl)
        return (
            owner is delivery
            and self.verifier.replay_pending_ttl >= inner.replay_pending_ttl
            and delivery.still_held(key)
        )
