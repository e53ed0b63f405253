"""Verifier: streaming under a hard cap, rotation, timestamps, gzip, timeouts, replay."""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from hmacguard import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    ConfigurationError,
    MemoryReplayStore,
    ReplayDetected,
    SignatureMismatch,
    SignatureMissing,
    Signer,
    TimestampInvalid,
    UnsupportedEncoding,
    Verifier,
)
from tests._build import differs_when_compiled

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {
    "github": "gh-secret",
    "stripe": "whsec_stripe_test",
    "slack": "slack-signing-secret",
    "standard-webhooks": WHSEC,
    "generic": "generic-secret",
}
BODY = b'{"event": "ping", "n": 1}'
KIB = 1024
MIB = 1024 * KIB


@pytest.mark.parametrize("scheme", sorted(SECRETS))
def test_signed_bodies_verify_for_every_scheme(scheme: str) -> None:
    headers = Signer(scheme, secrets=SECRETS[scheme]).sign(BODY)
    verifier = Verifier(scheme, secrets=SECRETS[scheme])
    with verifier.verify(headers, BODY) as verified:
        assert verified.getvalue() == BODY
        assert verified.size == len(BODY)
        assert verified.key_index == 0


@pytest.mark.parametrize("scheme", sorted(SECRETS))
def test_a_changed_body_is_a_401(scheme: str) -> None:
    headers = Signer(scheme, secrets=SECRETS[scheme]).sign(BODY)
    with pytest.raises(SignatureMismatch):
        Verifier(scheme, secrets=SECRETS[scheme], replay=None).verify(headers, BODY + b" ")


def test_rotation_checks_every_secret_in_one_pass_over_the_body() -> None:
    verifier = Verifier("github", secrets=["new", "older", "oldest"], replay=None)
    passes = 0

    def once() -> Iterator[bytes]:
        nonlocal passes
        passes += 1
        yield from (BODY[:5], BODY[5:])

    headers = Signer("github", secrets="oldest").sign(BODY)
    assert verifier.verify(headers, once()).key_index == 2
    assert passes == 1
    assert verifier.verify(Signer("github", secrets="new").sign(BODY), BODY).key_index == 0
    with pytest.raises(SignatureMismatch):
        verifier.verify(Signer("github", secrets="unknown").sign(BODY), BODY)


class CountingReader:
    """A wsgi.input stand-in that counts what is asked of it and never ends by itself."""

    def __init__(self, chunk: int = 64 * KIB) -> None:
        self.reads = 0
        self.bytes = 0
        self.chunk = chunk

    def read(self, size: int) -> bytes:
        self.reads += 1
        n = min(size, self.chunk)
        self.bytes += n
        return b"x" * n


def test_content_length_above_the_cap_is_refused_before_reading() -> None:
    reader = CountingReader()
    headers = {**Signer("github", secrets="s").sign(b""), "Content-Length": str(MIB + 1)}
    with pytest.raises(BodyTooLarge) as info:
        Verifier("github", secrets="s").verify(headers, reader)
    assert reader.reads == 0
    assert info.value.close_connection


def test_a_body_without_length_is_cut_off_at_the_cap() -> None:
    reader = CountingReader()
    headers = Signer("github", secrets="s").sign(b"")
    with pytest.raises(BodyTooLarge):
        Verifier("github", secrets="s").verify(headers, reader)
    # Never more than one byte past the cap is even asked for.
    assert reader.bytes == MIB + 1


def test_an_endless_iterator_is_not_consumed_past_the_cap() -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"y" * (64 * KIB)

    with pytest.raises(BodyTooLarge):
        Verifier("github", secrets="s").verify(Signer("github", secrets="s").sign(b""), endless())
    assert pulled == 17  # 16 chunks fill the 1 MiB cap, the 17th passes it


@pytest.mark.parametrize("spool_threshold", [0, 256 * KIB, MIB])
def test_memory_held_never_exceeds_cap_plus_one_chunk(spool_threshold: int) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield bytes(64 * KIB)  # a fresh chunk each time, as a socket read would give

    verifier = Verifier("github", secrets="s", spool_threshold=spool_threshold, replay=None)
    headers = Signer("github", secrets="s").sign(b"")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with pytest.raises(BodyTooLarge):
            verifier.verify(headers, endless())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    held = min(spool_threshold, MIB)
    # The kept body, the chunk in hand, the one just refused, and a little bookkeeping.
    assert peak <= held + 2 * 64 * KIB + 32 * KIB, peak


@pytest.mark.parametrize("length", ["-1", "abc", "1.5", "+3", "3, 4"])
def test_malformed_or_negative_content_length_is_a_400(length: str) -> None:
    headers = {**Signer("github", secrets="s").sign(BODY), "Content-Length": length}
    with pytest.raises(BadRequest):
        Verifier("github", secrets="s").verify(headers, BODY)


def test_content_length_disagreeing_with_the_body_is_a_400() -> None:
    verifier = Verifier("github", secrets="s", replay=None)
    headers = Signer("github", secrets="s").sign(BODY)
    with pytest.raises(BadRequest, match="shorter"):
        verifier.verify({**headers, "Content-Length": str(len(BODY) + 5)}, iter([BODY]))
    with pytest.raises(BadRequest, match="longer"):
        verifier.verify({**headers, "Content-Length": str(len(BODY) - 5)}, BODY)


def test_a_missing_signature_is_a_400_not_a_type_error() -> None:
    with pytest.raises(SignatureMissing) as info:
        Verifier("github", secrets="s").verify({}, BODY)
    assert info.value.status == 400


@pytest.mark.parametrize(("offset", "ok"), [(-301, False), (-299, True), (59, True), (61, False)])
def test_timestamp_tolerance_both_ways(offset: int, ok: bool) -> None:
    now = time.time()
    headers = Signer("stripe", secrets="s").sign(BODY, timestamp=int(now) + offset)
    verifier = Verifier("stripe", secrets="s", clock=lambda: now, replay=None)
    if ok:
        verifier.verify(headers, BODY).close()
    else:
        with pytest.raises(TimestampInvalid):
            verifier.verify(headers, BODY)


def test_timestamp_is_checked_again_when_the_body_is_in() -> None:
    start = time.time()
    clock = iter([start, start + 400.0])
    verifier = Verifier("slack", secrets="s", clock=lambda: next(clock), replay=None)
    headers = Signer("slack", secrets="s").sign(BODY, timestamp=int(start))
    with pytest.raises(TimestampInvalid, match="too old"):
        verifier.verify(headers, BODY)


def test_gzip_body_is_verified_as_sent_and_delivered_inflated() -> None:
    payload = b'{"big": "' + b"a" * 100_000 + b'"}'
    wire = gzip.compress(payload)
    headers = {**Signer("github", secrets="s").sign(wire), "Content-Encoding": "gzip"}
    verified = Verifier("github", secrets="s", max_body=64 * KIB, max_inflated_body=256 * KIB).verify(
        headers, wire
    )
    assert verified.getvalue() == payload


def test_gzip_bomb_hits_the_inflated_cap() -> None:
    wire = gzip.compress(bytes(16 * MIB))
    headers = {**Signer("github", secrets="s").sign(wire), "Content-Encoding": "gzip"}
    with pytest.raises(BodyTooLarge) as info:
        Verifier("github", secrets="s").verify(headers, wire)
    assert info.value.limit == MIB


def test_gzip_refused_when_not_allowed_and_other_codings_always() -> None:
    headers = Signer("github", secrets="s").sign(BODY)
    with pytest.raises(UnsupportedEncoding):
        Verifier("github", secrets="s", allow_gzip=False).verify(
            {**headers, "Content-Encoding": "gzip"}, BODY
        )
    with pytest.raises(UnsupportedEncoding):
        Verifier("github", secrets="s").verify({**headers, "Content-Encoding": "br"}, BODY)


def test_a_slow_body_is_a_408() -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(10):
            time.sleep(0.15)
            yield b"x"

    with pytest.raises(BodyTimeout) as info:
        Verifier("github", secrets="s", body_timeout=0.4).verify(
            Signer("github", secrets="s").sign(b"x" * 10), drip()
        )
    assert info.value.status == 408


def test_replay_is_refused_and_forgeries_never_reserve_an_id() -> None:
    signer = Signer("standard-webhooks", secrets=WHSEC)
    verifier = Verifier("standard-webhooks", secrets=WHSEC)
    good = signer.sign(BODY, message_id="msg_1")
    forged = {**good, "webhook-signature": "v1," + "A" * 43 + "="}
    with pytest.raises(SignatureMismatch):
        verifier.verify(forged, BODY)
    verifier.verify(good, BODY).close()  # the forgery did not burn msg_1
    with pytest.raises(ReplayDetected) as info:
        verifier.verify(good, BODY)
    assert info.value.status == 409


def test_replay_off_and_replay_by_signature_for_schemes_without_signed_ids() -> None:
    headers = Signer("github", secrets="s").sign(BODY)
    off = Verifier("github", secrets="s", replay=None)
    off.verify(headers, BODY).close()
    off.verify(headers, BODY).close()
    on = Verifier("github", secrets="s")
    on.verify(headers, BODY).close()
    # A new X-GitHub-Delivery (unsigned: an attacker can change it) does not make a replay new.
    with pytest.raises(ReplayDetected):
        on.verify({**headers, "X-GitHub-Delivery": "another"}, BODY)


def test_memory_replay_store_is_bounded_in_entries_and_time() -> None:
    now = [0.0]
    store = MemoryReplayStore(max_entries=3, max_evicted=0, clock=lambda: now[0])
    assert all(store.reserve(k, ttl=10) for k in "abcd")
    assert len(store) == 3
    assert store.reserve("a", ttl=10)  # evicted as the oldest, and no record kept: new again
    assert not store.reserve("d", ttl=10)
    now[0] = 11.0
    assert store.reserve("d", ttl=10)
    assert len(store) == 1


def test_memory_replay_store_remembers_committed_ids_it_evicted_until_they_expire() -> None:
    now = [0.0]
    store = MemoryReplayStore(max_entries=3, clock=lambda: now[0])
    assert all(store.reserve(k, ttl=10) for k in "abcdef")
    assert len(store) == 3
    assert not any(store.reserve(k, ttl=10) for k in "abcdef")  # evicted early, still refused
    now[0] = 10.5
    assert all(store.reserve(k, ttl=10) for k in "abc")  # expired: new again


def test_averify_reads_an_async_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield BODY[:3]
        await asyncio.sleep(0)
        yield BODY[3:]

    async def main() -> bytes:
        verifier = Verifier("github", secrets="s")
        verified = await verifier.averify(Signer("github", secrets="s").sign(BODY), chunks())
        return verified.getvalue()

    assert asyncio.run(main()) == BODY


@pytest.mark.parametrize(
    "options",
    [
        {"secrets": []},
        {"secrets": ""},
        {"secrets": "s", "max_body": 0},
        pytest.param(
            {"secrets": "s", "max_body": True},
            marks=differs_when_compiled("max_body: int takes True as 1, a 1-byte cap"),
        ),
        {"secrets": "s", "tolerance": -1},
        {"secrets": "s", "body_timeout": 0},
        {"secrets": "s", "replay": "redis"},
        {"secrets": "s", "replay_ttl": 0},
    ],
)
def test_configuration_mistakes_raise_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Verifier("github", **options)  # type: ignore[arg-type]


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Verifier("paypal", secrets="s")


def test_reordering_or_padding_the_listed_signatures_does_not_make_a_replay_new() -> None:
    verifier = Verifier("stripe", secrets="s")
    headers = Signer("stripe", secrets="s").sign(BODY)
    verifier.verify(headers, BODY).close()
    t, v1 = headers["Stripe-Signature"].split(",")
    junk = "v1=" + "ab" * 32
    for variant in (f"{t},{junk},{v1}", f"{t},{v1},{junk}", f"{junk},{v1},{t}"):
        with pytest.raises(ReplayDetected):
            verifier.verify({**headers, "Stripe-Signature": variant}, BODY)


def test_a_replayed_body_is_released_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmacguard.guard.verifier
    from hmacguard.guard.body import BoundedBody
    from hmacguard.guard.policy import Guard, Rejected, RequestHead

    made: list[BoundedBody] = []

    class Recorded(BoundedBody):
        __slots__ = ()

        def __init__(self, **options: int) -> None:
            super().__init__(**options)
            made.append(self)

    monkeypatch.setattr(hmacguard.guard.verifier, "BoundedBody", Recorded)
    guard = Guard(Verifier("github", secrets="s"))
    headers = {k.lower(): v for k, v in Signer("github", secrets="s").sign(BODY).items()}
    outcomes = []
    for _ in range(2):
        process = guard.process(RequestHead("POST", "/webhook", headers, "127.0.0.1"))
        next(process)
        process.send(BODY)
        with pytest.raises(StopIteration) as stop:
            process.send(b"")  # end of body (no Content-Length here)
        outcomes.append(stop.value.value)
    accepted, rejected = outcomes
    assert isinstance(rejected, Rejected)
    assert rejected.problem.status == 409
    assert not made[0].closed  # the accepted body is the application's until the request ends
    assert made[1].closed  # the replay's body was verified, then refused: released at once
    accepted.body.close()


def test_the_fast_hmac_objects_compute_what_hmac_computes() -> None:
    """keyed_mac() may use hmac.HMAC's private C object; it must agree with the public API."""
    import hashlib
    import hmac

    from hmacguard.guard.macs import keyed_mac

    for algorithm in ("sha256", "sha512", "sha1"):
        base = keyed_mac(b"key", algorithm)
        mac = base.copy()
        mac.update(b"hello ")
        mac.update(memoryview(b"world"))
        assert mac.digest() == hmac.digest(b"key", b"hello world", getattr(hashlib, algorithm))
        assert base.copy().digest() == hmac.digest(b"key", b"", algorithm)  # the base stays empty


@pytest.mark.parametrize("name", ["replay_ttl", "replay_pending_ttl"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1])
def test_replay_times_must_be_finite_and_positive(name: str, value: float) -> None:
    """NaN compared false with every expiry, so each hold lapsed at once (review of 9e0f0f7); an
    infinite time has no milliseconds to give Redis."""
    with pytest.raises(ConfigurationError, match=name):
        Verifier("github", secrets="s", **{name: value})
