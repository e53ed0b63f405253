"""Review of bd20713 (the cheaper WSGI lane): each of its four promises, attacked.

1. ``Scheme.parse_environ`` answers as ``parse(EnvironHeaders(environ))`` -- same claim or same
   exception -- for every scheme and environ (GitHub's override reads two ``HTTP_*`` keys itself).
2. ``SingleReadLane.take``'s one-secret shortcut decides as the general MAC path
   (``fresh_macs`` + ``signature_match``), held here to an independent ``hmac`` oracle too.
3. ``MemoryReplayStore.hold`` with ``_set()`` inlined behaves as before (a reference copy of the
   old ``hold`` is run side by side; threads racing on one key: exactly one wins).
4. ``call_verified`` with ``_Settling.respond`` folded in settles at once for a list/tuple with a
   known status, else at the end of iteration or at ``close()``; releases when the app raises. And
   no ``gunicorn.socket``: no socket deadline, with one: its timeout restored after the lane's read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hmacguard import MemoryReplayStore, Signer, Verifier, WSGIGuard
from hmacguard.errors import StoreUnavailable
from hmacguard.guard.lane import Handoff, SingleReadLane
from hmacguard.guard.outcomes import Accepted
from hmacguard.guard.replay import _SWEEP_EVERY
from hmacguard.http import EnvironHeaders
from hmacguard.schemes import SCHEME_NAMES, GitHubScheme, SignatureClaim, get_scheme
from hmacguard.schemes.generic import GenericScheme

from ._clock import Clock
from ._inprocess import CountingSocket, call_wsgi, wsgi_environ

SECRET = "whsec_" + base64.b64encode(b"review-lane-cut-secret").decode()
OTHER = "whsec_" + base64.b64encode(b"review-lane-cut-other").decode()


def outcome(parse: Any, environ: Mapping[str, Any]) -> tuple[str, Any]:
    try:
        return ("claim", parse(environ))
    except Exception as error:
        return (type(error).__name__, str(error))


def both(scheme: Any, environ: Mapping[str, Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    return outcome(scheme.parse_environ, environ), outcome(lambda e: scheme.parse(EnvironHeaders(e)), environ)


def environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


# -- 1. parse_environ ------------------------------------------------------------------------------

SCHEMES = [*SCHEME_NAMES, "generic-sha512-b64"]


def make_scheme(name: str) -> Any:
    if name == "generic-sha512-b64":
        return GenericScheme(header="X-Sig", prefix="v0=", encoding="base64", algorithm="sha512")
    return get_scheme(name)


def mutate(value: str, how: str, where: int, char: str) -> Any:
    i = where % (len(value) + 1)
    return {
        "same": value,
        "upper": value.upper(),
        "lower": value.lower(),
        "pad": " " + value + "\t",
        "insert": value[:i] + char + value[i:],
        "replace": value[:i] + char + value[i + 1 :],
        "cut": value[:i],
        "empty": "",
        "blank": "  ",
        "bytes": value.encode("utf-8"),
        "int": 0,
        "drop": None,
    }[how]


HOWS = ["same", "upper", "lower", "pad", "insert", "replace", "cut", "empty", "blank", "bytes", "int", "drop"]


@settings(max_examples=600, deadline=None)
@given(
    name=st.sampled_from(SCHEMES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(HOWS),
            st.integers(0, 200),
            st.sampled_from([" ", "\t", "é", "\x00", "g", ",", "A"]),
        ),
        min_size=4,
        max_size=4,
    ),
)
@example(name="github", edits=[("upper", 0, " ")] * 4)
@example(name="github", edits=[("bytes", 0, " "), ("same", 0, " "), ("same", 0, " "), ("same", 0, " ")])
def test_parse_environ_is_parse_of_the_environ_for_every_scheme(name: str, edits: list[Any]) -> None:
    scheme = make_scheme(name)
    if name == "generic-sha512-b64":
        headers = Signer(scheme, secrets=SECRET).sign(b"{}")
    else:
        headers = Signer(name, secrets=SECRET).sign(b"{}", timestamp=int(time.time()))
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "wsgi.input_terminated": True}
    for (header, value), (how, where, char) in zip(headers.items(), edits * 3, strict=False):
        changed = mutate(value, how, where, char)
        if changed is not None:
            environ[environ_key(header)] = changed
    fast, general = both(scheme, environ)
    assert fast == general


HEX64 = "ab" * 32


@pytest.mark.parametrize(
    ("signature", "delivery"),
    [
        ("sha256=" + HEX64.upper(), "id-1"),  # uppercase hex: the fast path takes it
        ("sha256=" + "aB" * 32, None),
        ("sha256=" + "ab" * 31 + "  ", None),  # 71 chars, fromhex skips the blanks: 31 bytes
        ("sha256=" + "ab" * 31 + "\t\n", "x"),
        ("sha256=" + "ab " * 21 + "a", None),
        ("sha256=" + "ab" * 31 + "١٢", None),  # Arabic-Indic digits: not hex
        ("sha256=" + HEX64, b" id "),  # a non-str delivery id: parse strips bytes too
        ("sha256=" + HEX64, 7),
        ("sha256=" + HEX64, 0),
        ("sha256=" + HEX64, ""),
        ("sha256=" + HEX64, " \t "),
        ("sha256=" + HEX64, " é-id\u2003"),  # unicode whitespace: str.strip removes it
        ("sha256=" + HEX64 + " ", "id"),  # 72 chars
        (" sha256=" + HEX64, "id"),
        ("SHA256=" + HEX64, "id"),
        ("sha256 =" + HEX64, "id"),
        (b"sha256=" + HEX64.encode(), "id"),
        (bytearray(b"sha256=" + HEX64.encode()), "id"),
        (0, "id"),
        ("", "id"),
    ],
)
def test_github_override_edges(signature: Any, delivery: Any) -> None:
    environ: dict[str, Any] = {"HTTP_X_HUB_SIGNATURE_256": signature}
    if delivery is not None:
        environ["HTTP_X_GITHUB_DELIVERY"] = delivery
    fast, general = both(get_scheme("github"), environ)
    assert fast == general


class Text(str):
    """A str subclass, as a server breaking PEP 3333 could pass (type(v) is str is False)."""


def test_github_override_with_str_subclasses_and_a_read_only_mapping() -> None:
    from types import MappingProxyType

    environ = MappingProxyType(
        {"HTTP_X_HUB_SIGNATURE_256": Text("sha256=" + HEX64), "HTTP_X_GITHUB_DELIVERY": Text(" d ")}
    )
    fast, general = both(get_scheme("github"), environ)
    assert fast == general
    assert fast[0] == "claim" and fast[1].message_id == "d"


def test_the_31_byte_near_miss_is_refused_by_both() -> None:
    # Catches a mutation dropping ``len(sig) == 32`` in GitHubScheme.parse_environ.
    environ = {"HTTP_X_HUB_SIGNATURE_256": "sha256=" + "ab" * 31 + "  "}
    fast, general = both(get_scheme("github"), environ)
    assert fast[0] == "SignatureMalformed"
    assert fast == general


class StrictGitHub(GitHubScheme):
    """A user's GitHub scheme that also requires the delivery id (its own ``parse``).

    The review found bd20713's ``GitHubScheme.parse_environ`` skipping such a ``parse`` (the lane
    accepted what the general path refused); ``Scheme.__init_subclass__`` now gives a class that
    overrides ``parse`` alone the default ``parse_environ`` again."""

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        from hmacguard.errors import SignatureMissing

        claim = super().parse(headers)
        if claim.message_id is None:
            raise SignatureMissing("missing X-GitHub-Delivery header")
        return claim


def test_a_github_subclass_overriding_parse_is_obeyed_by_parse_environ() -> None:
    scheme = StrictGitHub()
    environ = {"HTTP_X_HUB_SIGNATURE_256": "sha256=" + HEX64}
    fast, general = both(scheme, environ)
    assert general[0] == "SignatureMissing"
    assert fast == general


def test_a_github_subclass_refusal_holds_under_the_wsgi_lane() -> None:
    body = b'{"x": 1}'
    headers = Signer("github", secrets=SECRET).sign(body)
    headers.pop("X-GitHub-Delivery")
    wrapped = WSGIGuard(ok_app, verifier=Verifier(StrictGitHub(), secrets=SECRET), paths=["/hook"])
    assert wrapped.guard.lane.open
    response = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers))
    assert response.status == 400


# -- 2. SingleReadLane.take: the one-secret shortcut -----------------------------------------------


def ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def lanes(scheme: Any, secrets: list[str]) -> tuple[SingleReadLane, SingleReadLane, Verifier]:
    """The lane as built (shortcut when one secret), and one forced onto the general MAC path."""
    made = []
    for _ in range(2):
        verifier = Verifier(scheme, secrets=secrets, replay=MemoryReplayStore(), max_body=4096)
        made.append((SingleReadLane(verifier, None), verifier))
    general = made[1][0]
    general._single = None
    return made[0][0], general, made[0][1]


def oracle(key: bytes, algorithm: str, prefix: bytes, body: bytes) -> bytes:
    return hmac.new(key, prefix + body, getattr(hashlib, algorithm)).digest()


def decided(taken: Accepted | Handoff) -> tuple[Any, ...]:
    if isinstance(taken, Handoff):
        return ("handoff", taken.result)
    verified = taken.body
    key = None if taken.delivery is None else taken.delivery.key
    return ("accepted", verified.key_index, verified.message_id, verified.read(), key)


@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(SCHEMES),
    two=st.booleans(),
    algorithm=st.sampled_from(["scheme", "sha256", "sha512", "sha1"]),
    sigs=st.lists(
        st.sampled_from(["good", "good-other", "wrong", "short", "other-alg"]), min_size=1, max_size=3
    ),
    prefix=st.binary(max_size=24),
    body=st.binary(min_size=1, max_size=80),
    message_id=st.one_of(st.none(), st.just("msg-1")),
)
@example(
    name="standard-webhooks",
    two=False,
    algorithm="scheme",
    sigs=["wrong", "good"],
    prefix=b"1.2.",
    body=b"x",
    message_id="m",
)
@example(
    name="stripe", two=False, algorithm="scheme", sigs=["good"], prefix=b"123.", body=b"x", message_id=None
)
@example(name="github", two=False, algorithm="sha1", sigs=["good"], prefix=b"", body=b"x", message_id=None)
def test_take_decides_as_the_general_mac_path_and_as_hmac(
    name: str,
    two: bool,
    algorithm: str,
    sigs: list[str],
    prefix: bytes,
    body: bytes,
    message_id: str | None,
) -> None:
    scheme = make_scheme(name)
    secrets = [SECRET, OTHER] if two else [SECRET]
    fast, general, verifier = lanes(scheme, secrets)
    alg = scheme.algorithm if algorithm == "scheme" else algorithm
    keys = verifier.keys
    good = oracle(keys[0], alg, prefix, body)
    good_other = oracle(keys[-1], alg, prefix, body) if two else oracle(scheme.key(OTHER), alg, prefix, body)
    other_alg = oracle(keys[0], "sha1" if alg != "sha1" else "sha256", prefix, body)
    pick = {
        "good": good,
        "good-other": good_other,
        "wrong": bytes(len(good)),
        "short": good[:-1],
        "other-alg": other_alg,
    }
    claim = SignatureClaim(alg, tuple(pick[s] for s in sigs), prefix, None, message_id)
    now = time.time()
    results = []
    for lane in (fast, general):
        results.append(decided(lane.take(claim, body, len(body), time.monotonic(), now)))
    assert results[0] == results[1]
    # The oracle: accepted iff some secret's HMAC is one of the claimed signatures; first secret wins.
    # The replay key is the current (first) secret's digest, whichever secret matched.
    digests = [oracle(k, alg, prefix, body) for k in keys]
    matches = [i for i, d in enumerate(digests) if d in claim.signatures]
    if not matches:
        assert results[0][0] == "handoff"
    else:
        assert results[0][:2] == ("accepted", matches[0])
        assert results[0][4] == verifier.replay_key(claim, digests[0])


class OddAlgorithm(GenericScheme):
    """A scheme whose declared algorithm (sha512) is not the one its claims use (sha256)."""

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        claim = super().parse(headers)
        return claim._replace(algorithm="sha256")


def test_a_scheme_whose_claims_use_another_algorithm_is_still_verified_in_the_lane() -> None:
    scheme = OddAlgorithm(algorithm="sha512")
    body = b'{"odd": true}'
    key = scheme.key(SECRET)
    # digest_size is sha512's, so the header carries 64 bytes; the claim says sha256 and the
    # general path compares a 32-byte MAC: never a match, on either path.
    headers = {"X-Signature": hmac.new(key, body, hashlib.sha512).hexdigest()}
    wrapped = WSGIGuard(ok_app, verifier=Verifier(scheme, secrets=SECRET), paths=["/hook"])
    closed = WSGIGuard(ok_app, verifier=Verifier(scheme, secrets=SECRET), paths=["/hook"])
    closed.guard.lane.open = False
    assert wrapped.guard.lane._single[0] == "sha512"
    a = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers))
    b = call_wsgi(closed, wsgi_environ("POST", "/hook", body, headers))
    assert (a.status, a.body) == (b.status, b.body) == (401, a.body)


@pytest.mark.parametrize("name", sorted(SCHEME_NAMES))
@pytest.mark.parametrize("tamper", ["none", "body", "signature"])
def test_one_secret_guard_lane_open_or_closed_answers_alike(name: str, tamper: str) -> None:
    body = b'{"event": "ping", "n": 3}'
    headers = Signer(name, secrets=SECRET).sign(body, timestamp=int(time.time()))
    sig = next(h for h in headers if "signature" in h.lower())
    if tamper == "signature":  # a well-formed signature by a secret not ours
        headers[sig] = Signer(name, secrets=OTHER).sign(body, timestamp=int(time.time()))[sig]
    wire = body + b" " if tamper == "body" else body
    answers = []
    for lane_open in (True, False):
        wrapped = WSGIGuard(ok_app, verifier=Verifier(name, secrets=SECRET), paths=["/hook"])
        wrapped.guard.lane.open = lane_open
        first = call_wsgi(wrapped, wsgi_environ("POST", "/hook", wire, headers))
        again = call_wsgi(wrapped, wsgi_environ("POST", "/hook", wire, headers))
        answers.append((first.status, first.body, again.status, len(wrapped.guard.verifier.replay)))
    assert answers[0] == answers[1]
    assert answers[0][0] == (200 if tamper == "none" else 401)


def test_standard_webhooks_with_the_right_signature_second_is_accepted_by_the_lane() -> None:
    body = b'{"many": "sigs"}'
    headers = Signer("standard-webhooks", secrets=SECRET).sign(body, timestamp=int(time.time()))
    right = headers["webhook-signature"]
    headers["webhook-signature"] = "v1," + base64.b64encode(bytes(32)).decode() + " " + right
    wrapped = WSGIGuard(ok_app, verifier=Verifier("standard-webhooks", secrets=SECRET), paths=["/hook"])
    calls: list[Any] = []
    process = wrapped.guard.process
    wrapped.guard.process = lambda *a, **k: calls.append(1) or process(*a, **k)  # type: ignore[method-assign]
    response = call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers))
    assert (response.status, len(calls)) == (200, 0)  # decided in the lane, by the general MAC path


# -- 3. MemoryReplayStore.hold ---------------------------------------------------------------------


class OldHold(MemoryReplayStore):
    """The store with ``hold`` as it was before bd20713 (through ``_set``), and the store's policy
    since 7c7583e: a store full of live pending holds takes the new hold back and answers 503 (the
    one thing ``_set``, used by ``commit`` only since, does not say: which key is the new hold)."""

    def hold(self, key: str, ttl: float) -> str | None:
        token = str(next(self._tokens))
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._expire(now)
                self._next_sweep = now + _SWEEP_EVERY
            entry = self._entries.get(key)
            if entry is None and self._aside:  # since the fix of test_evicted_holds.py
                entry = self._restore(key)
            if entry is not None and entry[0] > now:
                return None
            self._set(key, now + ttl, token)
            return token

    def _set(self, key: str, expiry: float, token: str | None) -> None:
        # As MemoryReplayStore._set, telling _evict_oldest which key is the new hold when it is one.
        entries = self._entries
        if key in entries:
            del entries[key]
        entries[key] = (expiry, token)
        if len(entries) > self._room:
            self._evict_oldest(self._clock(), new_hold=key if token is not None else None)


OPS = st.one_of(
    st.tuples(st.just("hold"), st.sampled_from("abcd"), st.sampled_from([0.5, 1.0, 3.0, 100.0])),
    st.tuples(st.just("reserve"), st.sampled_from("abcd"), st.sampled_from([0.5, 1.0, 3.0])),
    st.tuples(st.just("commit"), st.sampled_from("abcd"), st.sampled_from([1.0, 10.0])),
    st.tuples(st.just("release"), st.sampled_from("abcd"), st.just(0.0)),
    st.tuples(st.just("holds"), st.sampled_from("abcd"), st.just(0.0)),
    st.tuples(st.just("tick"), st.just(""), st.sampled_from([0.25, 0.5, 1.0, 6.0])),
)


@settings(max_examples=500, deadline=None)
@given(max_entries=st.integers(1, 3), ops=st.lists(OPS, max_size=40))
@example(max_entries=2, ops=[("hold", "a", 1.0), ("hold", "b", 100.0), ("tick", "", 1.0), ("hold", "a", 1.0),
                             ("hold", "c", 100.0), ("holds", "a", 0.0)])  # fmt: skip
def test_hold_behaves_as_before(max_entries: int, ops: list[tuple[str, str, float]]) -> None:
    clocks = (Clock(), Clock())
    # No record of evicted ids: OldHold predates it (tested on its own in test_verifier).
    stores = (MemoryReplayStore(max_entries=max_entries, max_evicted=0, clock=clocks[0]),
              OldHold(max_entries=max_entries, max_evicted=0, clock=clocks[1]))  # fmt: skip
    tokens: list[dict[str, str]] = [{}, {}]
    for op, key, arg in ops:
        answers = []
        for store, clock, mine in zip(stores, clocks, tokens, strict=True):
            if op == "tick":
                clock.now += arg
                answers.append(None)
            elif op == "hold":
                try:
                    token = store.hold(key, arg)
                except StoreUnavailable:  # full of live pending holds (since 7c7583e)
                    answers.append("503")
                    continue
                if token is not None:
                    mine[key] = token
                answers.append(token is not None)
            elif op == "reserve":
                try:
                    answers.append(store.reserve(key, arg))
                except StoreUnavailable:
                    answers.append("503")
            elif op == "commit":
                answers.append(store.commit(key, mine.get(key, "none"), arg))
            elif op == "release":
                answers.append(store.release(key, mine.get(key, "none")))
            else:
                answers.append(store.holds(key, mine.get(key, "none")))
        assert answers[0] == answers[1], (op, key)
        # Same keys, same order, same expiries, same pending/committed state (tokens differ by count).
        views = [[(k, e, t is None) for k, (e, t) in s._entries.items()] for s in stores]
        assert views[0] == views[1]
        assert list(stores[0]._aside) == list(stores[1]._aside)
        assert len(stores[0]) <= max_entries


def test_a_lapsed_hold_is_retaken_and_moves_to_the_end_for_eviction() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=2, clock=clock)
    assert store.hold("a", 1.0) is not None
    b = store.hold("b", 100.0)
    assert b is not None
    assert store.hold("a", 1.0) is None  # held: refused
    store.commit("b", b, 100.0)  # b's application answered: committed, in place (after a)
    clock.now += 1.0  # a's hold lapses (expiry == now counts as lapsed); no sweep yet
    assert store.hold("a", 100.0) is not None  # retaken, now the newest
    assert store.hold("c", 100.0) is not None  # over the bound: b, now the oldest, goes
    # Had a kept its old place, it would have been set aside and b evicted all the same, with c
    # alone in the entries. (b was a pending hold here until 7c7583e: with every entry a pending
    # hold, b left for the record; now c would be refused with 503 instead -- below.)
    assert list(store._entries) == ["a", "c"] and not store._aside
    assert store.hold("a", 1.0) is None and store.hold("b", 1.0) is None  # a held; b in the record
    with pytest.raises(StoreUnavailable):
        store.hold("d", 1.0)  # a and c pending: full, 503
    assert list(store._aside) == ["a", "c"] and store.hold("a", 1.0) is None


@pytest.mark.parametrize("max_entries", [1, 2, 3])
def test_committed_keys_are_refused_and_the_bound_evicts_oldest_first(max_entries: int) -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=max_entries, clock=clock)
    keys = [f"k{i}" for i in range(max_entries + 2)]
    for key in keys:
        token = store.hold(key, 60.0)
        assert token is not None
        store.commit(key, token, 600.0)
        assert store.hold(key, 60.0) is None
        assert len(store) <= max_entries
    assert list(store._entries) == keys[-max_entries:]


def _race(store: MemoryReplayStore, key: str) -> tuple[list[str], int, int]:
    """8 threads hold ``key`` at once: the tokens won, how many were refused, how many got 503."""
    start = threading.Barrier(8)
    won: list[str] = []
    refused: list[None] = []
    unavailable: list[None] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait()
        try:
            token = store.hold(key, 60.0)
        except StoreUnavailable:
            with lock:
                unavailable.append(None)
            return
        with lock:
            if token is not None:
                won.append(token)
            else:
                refused.append(None)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, len(refused), len(unavailable)


def test_threads_racing_on_one_key_exactly_one_wins() -> None:
    """Each round's winner commits (its application answered), so the store of 3 has room: exactly
    one of 8 racers wins, 7 are refused, none gets 503. (Until 7c7583e the winners stayed pending:
    from the fourth round on, every racer now gets 503 -- the next test.)"""
    store = MemoryReplayStore(max_entries=3)
    for round_ in range(40):
        key = f"delivery-{round_}"
        won, refused, unavailable = _race(store, key)
        assert (len(won), refused, unavailable) == (1, 7, 0)
        assert store.holds(key, won[0])
        store.commit(key, won[0], 600.0)
        assert len(store) <= 3


def test_threads_racing_on_a_store_full_of_pending_holds_all_get_503_until_one_settles() -> None:
    """A store of 3 with 3 live pending holds: 8 racers on a new key all get 503, none wins, the
    3 holds are kept; once one is released, exactly one racer wins and 7 are refused."""
    store = MemoryReplayStore(max_entries=3)
    pending = [(key, store.hold(key, 60.0)) for key in ("p0", "p1", "p2")]
    assert (won := _race(store, "new")) == ([], 0, 8), won
    assert all(token is not None and store.holds(key, token) for key, token in pending)
    key, token = pending[0]
    assert token is not None
    store.release(key, token)
    won, refused, unavailable = _race(store, "new")
    assert (len(won), refused, unavailable) == (1, 7, 0)
    assert store.holds("new", won[0]) and len(store) == 3


# -- 4. call_verified and the socket deadline ------------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    return Signer("github", secrets=SECRET).sign(body)


def guarded(app: Any) -> tuple[WSGIGuard, MemoryReplayStore]:
    store = MemoryReplayStore()
    return WSGIGuard(app, verifier=Verifier("github", secrets=SECRET, replay=store), paths=["/hook"]), store


def state(store: MemoryReplayStore) -> list[str]:
    """Each key's state: "held" (pending) or "kept" (committed)."""
    return ["held" if token is not None else "kept" for _, token in store._entries.values()]


class StartResponse:
    def __init__(self) -> None:
        self.status: str | None = None

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        return lambda data: None


def start(app: Any, body: bytes = b'{"n": 1}') -> tuple[Any, MemoryReplayStore, StartResponse]:
    wrapped, store = guarded(app)
    sr = StartResponse()
    iterable = wrapped(wsgi_environ("POST", "/hook", body, signed(body)), sr)
    return iterable, store, sr


@pytest.mark.parametrize(
    ("status", "kind", "settled_at_once", "final"),
    [
        ("200 OK", list, True, ["kept"]),
        ("204 No Content", tuple, True, ["kept"]),
        ("404 Not Found", list, True, ["kept"]),
        ("499 Client Closed", tuple, True, ["kept"]),
        ("500 Internal Server Error", list, True, []),
        ("503 Service Unavailable", tuple, True, []),
        ("599 Odd", list, True, []),
        ("xyz Broken", list, True, []),  # not a number: 500
        ("200 OK", "generator", False, ["kept"]),
        ("502 Bad Gateway", "generator", False, []),
        ("200 OK", "iterator", False, ["kept"]),
    ],
)
def test_the_delivery_is_settled_by_the_status_and_at_the_right_time(
    status: str, kind: Any, settled_at_once: bool, final: list[str]
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"].read()
        start_response(status, [])
        if kind == "generator":
            return (b for b in [b"a", b"b"])
        if kind == "iterator":
            return iter([b"a"])
        return kind([b"a", b"b"])

    iterable, store, sr = start(app)
    assert sr.status == status
    assert state(store) == (final if settled_at_once else ["held"])
    body = b"".join(iterable)
    assert state(store) == final
    iterable.close()
    iterable.close()  # twice: still settled once
    assert state(store) == final
    assert body == (b"a" if kind == "iterator" else b"ab")


def test_start_response_called_inside_a_generator_settles_at_its_end() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"x"

    iterable, store, _ = start(app)
    assert state(store) == ["held"]
    assert list(iterable) == [b"x"]
    assert state(store) == ["kept"]
    iterable.close()
    assert state(store) == ["kept"]


def test_a_list_returned_without_start_response_is_not_settled_at_once_and_released() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [b"never started"]

    iterable, store, sr = start(app)
    assert sr.status is None
    assert state(store) == ["held"]  # status unknown: not settled at once
    list(iterable)
    iterable.close()
    assert state(store) == []  # no status: not processed, released for the retry


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_app_that_raises_releases_the_delivery_and_the_body(when: str) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["file"] = environ["wsgi.input"]
        if when == "after":
            start_response("200 OK", [])
        raise RuntimeError("app failed")

    wrapped, store = guarded(app)
    body = b'{"n": 2}'
    with pytest.raises(RuntimeError):
        wrapped(wsgi_environ("POST", "/hook", body, signed(body)), StartResponse())
    assert state(store) == []
    assert seen["file"].closed
    # The retry is processed.
    again = call_wsgi(guarded(ok_app)[0], wsgi_environ("POST", "/hook", body, signed(body)))
    assert again.status == 200


def test_a_generator_failing_midway_releases_and_close_closes_the_apps_iterable() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            raise ValueError("midway")

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    iterable, store, _ = start(app)
    with pytest.raises(ValueError):
        list(iterable)
    iterable.close()
    assert (state(store), closed) == ([], [True])


def test_a_whole_response_closes_the_body_at_close() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> tuple[bytes, ...]:
        seen["file"] = environ["wsgi.input"]
        start_response("200 OK", [])
        return (b"ok",)

    iterable, store, _ = start(app)
    assert state(store) == ["kept"] and not seen["file"].closed
    assert list(iterable) == [b"ok"]
    iterable.close()
    assert seen["file"].closed


class Unbuffered:
    """A wsgi.input gunicorn could not serve from memory (no buffer to look at)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out


@pytest.mark.parametrize("with_socket", [False, True])
def test_the_lane_sets_and_restores_the_socket_timeout_only_with_gunicorn_socket(with_socket: bool) -> None:
    wrapped, store = guarded(ok_app)
    body = b'{"n": 9}'
    environ = wsgi_environ("POST", "/hook", Unbuffered(body), signed(body), content_length=False)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    sock = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(7.0)
        sock.timeouts.clear()
        if with_socket:
            environ["gunicorn.socket"] = sock
        else:
            environ["gunicorn.other"] = sock
        calls: list[int] = []
        process = wrapped.guard.process
        wrapped.guard.process = lambda *a, **k: calls.append(1) or process(*a, **k)  # type: ignore[method-assign]
        response = call_wsgi(wrapped, environ)
        assert (response.status, calls, state(store)) == (200, [], ["kept"])
        if with_socket:
            assert sock.timeouts[0] is not None and sock.timeouts[0] <= 30.0
            assert sock.timeouts[-1] == 7.0  # restored
        else:
            assert sock.timeouts == []
        assert sock.gettimeout() == 7.0
    finally:
        sock.close()


@pytest.mark.slow
def test_real_gunicorn_lane_accepts_refuses_forgery_and_replay() -> None:
    from ._apps.plain_guarded import SECRET as PLAIN
    from ._servers import gunicorn, raw_response

    def request(body: bytes, headers: dict[str, str]) -> bytes:
        lines = [
            "POST /webhook HTTP/1.1",
            "Host: 127.0.0.1",
            "Connection: close",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    body = b'{"review": "lane-cut"}'
    headers = Signer("github", secrets=PLAIN).sign(body)
    upper = dict(headers)
    upper["X-Hub-Signature-256"] = "sha256=" + headers["X-Hub-Signature-256"][7:].upper()
    with gunicorn("tests.guard._apps.plain_guarded:wsgi", {}, workers=1) as server:
        assert raw_response(server.port, request(body, headers))[0] == 200
        assert raw_response(server.port, request(body, upper))[0] == 409  # same delivery id: replay
        forged = Signer("github", secrets=PLAIN).sign(body + b"!")
        assert raw_response(server.port, request(body, forged))[0] == 401
        other = b'{"review": "lane-cut-2"}'
        h2 = Signer("github", secrets=PLAIN).sign(other)
        h2["X-Hub-Signature-256"] = "sha256=" + h2["X-Hub-Signature-256"][7:].upper()
        assert raw_response(server.port, request(other, h2))[0] == 200


class UnknownHashGitHub(GitHubScheme):
    """A custom scheme whose ``algorithm`` names a hash ``hmac`` lacks (its claims still say sha256)."""

    algorithm = "no-such-hash"


def test_a_scheme_naming_an_unknown_hash_still_builds_a_guard_and_decides_as_before() -> None:
    # The lane's one-secret MAC is built when the guard is; a hash hmac lacks must not stop the
    # guard from starting (it did not before bd20713): no shortcut, each claim judged as before.
    body = b'{"x": 1}'
    headers = Signer("github", secrets=SECRET).sign(body)
    statuses = []
    for lane_open in (True, False):
        wrapped = WSGIGuard(ok_app, verifier=Verifier(UnknownHashGitHub(), secrets=SECRET), paths=["/hook"])
        wrapped.guard.lane.open = lane_open
        statuses.append(call_wsgi(wrapped, wsgi_environ("POST", "/hook", body, headers)).status)
    assert statuses[0] == statuses[1] == 200
