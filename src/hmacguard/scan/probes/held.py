"""Held uploads: many slow uploads open at once, the server's memory read while it waits for them.

A per-request cap bounds one request, not how many hold a body at the same time. An ASGI server,
Node, or gunicorn's threads take as many connections as clients open, and starting an upload needs
no secret. This phase opens ``held_uploads`` connections, each a request head with a forged
signature (the attacker's view, with or without ``--secret``: these bodies are never finished, so
no signature could be checked) declaring ``size`` bytes, and sends all of each body but its last
few bytes; then it closes every connection, no body ever completed.

It sends in rounds -- a piece on every connection, then a pause -- as slow uploads arrive, at most
about 64 MiB/s in all. Sent at once, a server's own read buffers would take whole bodies before the
application saw any (uvicorn's h11 keeps each connection's buffer at the largest read it made), and
an application's process-wide bound could not be told from none. The server's RSS is read four
times: before the first connection, once the first piece is on every connection, three quarters
of the way on (the late reading), and with every body all but finished. The second reading is the baseline
the rule judges against: what the server spends per connection (its objects, buffers, a temporary
file) is spent by then, so the growth from there to the end is what each further byte of a held
upload costs; the late reading shows whether that growth went on to the end, or stopped at a
process-wide bound that the scan's uploads passed.

``size`` is the budget's ``held_size`` (250,000 bytes), at most the largest size the server
accepted: a body just below 256 KiB is the most a careful server keeps in memory before it spools
to disk (hmacguard's guard, Werkzeug's form parser, Django's upload handlers all switch there or
lower), so it is the most one upload can hold in a server that is bounded per request. When no
earlier probe was accepted at that size, one request tries it (then a quarter and a sixteenth).

Like retention, it runs before any large probe: a server that has handled large bodies keeps freed
heap resident, which held uploads would fill without growing RSS. It is skipped when the target
advertises a rate limit too small for it plus the size probes (a limit that counts uploads in
flight answers most of them 429 anyway, which the result shows).

Bounded: ``held_uploads`` connections (counted as requests), their body bytes against the byte
budget; connecting stops at the first failure or after 5 s (what was opened is held), the pieces
are sized for a body to go out in at most 160 rounds (8 s at full pace), and sending stops when
nothing moves for a second (a server that reads one request at a time leaves the rest in its kernel
buffers), after :data:`SEND_SECONDS` in all (a server that reads slowly: what was sent is judged,
with a note), or when the scan's time is up (the phase is then listed as cut short).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
import selectors
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hmacguard.scan.config import MAX_HELD_SOURCES, KiB, MiB
from hmacguard.scan.model import HeldResult, Variant
from hmacguard.scan.observe import MemoryObserver
from hmacguard.scan.probes.base import Prober, ScanStopped, size_text
from hmacguard.scan.probes.retention import accepted_size, memory_phase
from hmacguard.scan.wire import Endpoint, WireRequest
from hmacguard.schemes import forged_headers

__all__ = ["HELD_BACK", "MAX_ROUNDS", "ROUND_BYTES", "held_sources", "piece_size", "run_held"]

#: Body bytes never sent: the server keeps waiting for them.
HELD_BACK = 64
#: Seconds between rounds, for the server to read them.
GAP = 0.05
#: Bytes sent per round on all connections together (64 MiB/s): 400 uploads at 16 KiB a piece
#: outran a loaded uvicorn worker, whose read buffers then grew as if it kept the bodies.
ROUND_BYTES = 64 * MiB // 20
#: A piece per connection per round: at most 16 KiB (below uvicorn's 64 KiB read pause and Node's
#: 64 KiB highWaterMark, so the server hands each piece on before the next), at least 4 KiB -- and
#: large enough that a body goes out in at most :data:`MAX_ROUNDS` rounds (8 s).
_LARGEST_PIECE, _SMALLEST_PIECE = 16 * KiB, 4 * KiB
MAX_ROUNDS = 160
#: Seconds connecting may take in all: a server with a short accept queue (Python's socketserver
#: listens with 5) makes connects wait a second now and then, 400 of them a minute.
OPEN_SECONDS = 5.0
#: Seconds after a stage's last byte before the memory is read, for the server to take it in.
SETTLE = 0.3
#: Stop sending when nothing moved this long: the server is not reading those connections.
STALL = 1.0
#: Seconds the sending may take in all, from the first piece to the last (twice the
#: :data:`MAX_ROUNDS` rounds at full pace): a server that reads steadily but slowly -- a remote one
#: on a slow link -- never stalls, and without this the phase would spend the scan's whole time
#: budget and leave the later phases untested. Past it, what was sent by then is judged.
SEND_SECONDS = 2 * MAX_ROUNDS * GAP + 4 * SETTLE
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
#: A non-blocking socket that cannot move now; TLS says so for a record that is not application
#: data too (TLS 1.3's session tickets after the handshake). None of these ends an upload.
_NOT_NOW = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def piece_size(uploads: int, each: int) -> int:
    """Bytes sent on each connection per round, when each sends ``each`` bytes in all."""
    paced = max(_SMALLEST_PIECE, min(_LARGEST_PIECE, ROUND_BYTES // uploads))
    return max(paced, -(-each // MAX_ROUNDS))


@dataclass
class _Upload:
    sock: socket.socket
    head: memoryview
    sent: int = 0
    #: What it had sent when the first piece was on every connection, and at the late reading.
    first: int = 0
    late: int = 0
    #: None while held; otherwise its status ("413") or how it ended ("closed", "reset").
    ended: str | None = None
    got: bytes = b""

    def write(self, body: memoryview, upto: int) -> bool:
        """Send the head, then the body up to ``upto`` bytes, as far as the socket takes them."""
        moved = False
        try:
            while len(self.head):
                n = self.sock.send(self.head)
                self.head = self.head[n:]
                moved = True
            while self.sent < upto:
                n = self.sock.send(body[self.sent : upto])
                self.sent += n
                moved = True
        except _NOT_NOW:
            pass
        except OSError:
            # A server that answers early (413) and closes with the body unread makes its kernel
            # reset the connection, and this send fails -- but the answer came first and is still
            # there to read: the upload ended with that status, not with a reset. A few reads: over
            # TLS each gives one record, and a status line may come in more than one.
            for _ in range(4):
                self.read()
                if self.ended is not None:
                    break
            if self.ended is None or not self.ended.isdigit():
                self.ended = "reset"
        return moved

    def read(self) -> None:
        """Take what the server sent: an answer or the end of the connection ends the upload."""
        try:
            data = self.sock.recv(4096)
        except _NOT_NOW:
            return
        except OSError:
            self.ended = "reset"
            return
        if not data:
            self.ended = "closed"
            return
        self.got = (self.got + data)[:64]
        match = _STATUS.match(self.got)
        if match:
            self.ended = match.group(1).decode()


@dataclass
class _Hold:
    """The open connections and the selector that reads them."""

    body: memoryview
    piece: int
    #: Where the uploads connect to (with sources: the one address the scan reaches the target on).
    endpoint: Endpoint
    #: Source addresses to connect from, in turn (none: this host's own).
    sources: tuple[str, ...] = ()
    uploads: list[_Upload] = field(default_factory=list)
    #: Connections that could not be opened (at most one: opening stops there), and those not
    #: tried because connecting took :data:`OPEN_SECONDS` already.
    failed: int = 0
    not_opened: int = 0
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def live(self) -> list[_Upload]:
        return [u for u in self.uploads if u.ended is None]

    def wait(self, seconds: float) -> None:
        """Read answers for ``seconds``; an upload that ends is unregistered."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and self.live():
            for key, _ in self.selector.select(timeout=left):
                upload: _Upload = key.data
                if upload.ended is None:
                    upload.read()
                if upload.ended is not None:  # (a write may have ended it: a reset)
                    self.selector.unregister(upload.sock)

    def trickle(self, prober: Prober, upto: int, until: float) -> bool:
        """Send every body up to ``upto`` bytes a piece per round, then let the server read it; stop
        early when nothing moves for :data:`STALL` seconds, or at ``until`` (then ``False``: cut
        short). ScanStopped when the scan's time is up."""
        upto = min(upto, len(self.body))
        allowed = min((u.sent for u in self.live()), default=0)
        last_move = time.monotonic()
        while self.live() and time.monotonic() - last_move < STALL:
            if time.monotonic() >= prober.deadline:
                raise ScanStopped(f"the time budget ({prober.budget.seconds:g}s) ran out")
            if time.monotonic() >= until:
                self.wait(SETTLE)
                return False
            allowed = min(upto, allowed + self.piece)
            moved = False
            for upload in self.live():
                moved = upload.write(self.body, allowed) or moved
            if moved:
                last_move = time.monotonic()
            self.wait(GAP)
            if all(u.sent >= upto for u in self.live()):
                break
        self.wait(SETTLE)
        return True

    def close(self) -> None:
        for upload in self.uploads:
            with contextlib.suppress(OSError):
                upload.sock.close()
        self.selector.close()


def _size(prober: Prober, variant: Variant, accepted: int) -> int | None:
    want = min(prober.budget.held_size, prober.budget.max_size)
    if accepted >= want:
        return want
    return accepted_size(prober, variant, want, "held-uploads")


def _reached(prober: Prober) -> str | None:
    """The address the scan reaches the target on: the first of its addresses that takes a
    connection, as every other request connects (a name may resolve to ::1 and 127.0.0.1 with the
    server on one of them only). None when none takes one now."""
    timeout = min(prober.budget.request_timeout, 2.0)
    try:
        sock = prober.endpoint.open(timeout=timeout, send_buffer=prober.budget.send_buffer)
    except OSError:
        return None
    with sock:
        return str(sock.getpeername()[0])


def _on_loopback_v4(address: str | None) -> bool:
    return address is not None and ipaddress.ip_address(address) in _LOOPBACK_V4


def held_sources(prober: Prober) -> tuple[tuple[str, ...], Endpoint] | None:
    """The loopback addresses the uploads are spread over (``--held-sources``, at most one an
    upload), and the endpoint they connect to: none to choose for one (this host's own address and
    the scan's endpoint, as every other phase); else the address the scan reaches the target on,
    alone. ``None``, and the phase listed as untested, when that is not on 127.0.0.0/8 -- no other
    address of this host could reach it as another client would."""
    count = prober.budget.held_addresses
    if count == 1:
        return (), prober.endpoint
    reached = _reached(prober)
    if reached is None or not _on_loopback_v4(reached):
        on = f" (it answers on {reached})" if reached else " (it took no connection)"
        prober.skip("held-uploads", f"--held-sources needs a target that answers on 127.0.0.0/8{on}")
        return None
    sources = tuple(str(_LOOPBACK_V4[2 + i]) for i in range(count))
    for source in sources:  # Linux answers on all of 127.0.0.0/8; macOS on 127.0.0.1 alone
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((source, 0))
        except OSError as exc:
            prober.skip(
                "held-uploads", f"--held-sources: this host cannot send from {source} ({exc.strerror})"
            )
            return None
    return sources, dataclasses.replace(prober.endpoint, addresses=(reached,))


def _spread_hint(prober: Prober, count: int) -> Callable[[int], str] | None:
    """What to tell a user whose target's rate limit leaves no room for the uploads from one address:
    on loopback, how many source addresses would give each share room (``--held-sources``; at least
    2, and at most :data:`MAX_HELD_SOURCES` -- with fewer uploads when that many are not enough)."""
    if prober.budget.held_sources > 1:
        return None

    def hint(allowance: int) -> str:
        if allowance < 1 or not _on_loopback_v4(_reached(prober)):
            return ""
        needed = max(2, -(-count // allowance))
        if needed <= MAX_HELD_SOURCES:
            return (
                f" (if its limit is per client, --held-sources {needed} spreads them over as many addresses)"
            )
        return (
            f" (if its limit is per client, --held-sources {MAX_HELD_SOURCES} with --held-uploads "
            f"{MAX_HELD_SOURCES * allowance} gives each address room)"
        )

    return hint


def run_held(prober: Prober) -> HeldResult | None:
    count = prober.budget.held_uploads
    spread = held_sources(prober)
    if spread is None:
        return None
    sources, endpoint = spread
    start = memory_phase(
        prober, "held-uploads", count, clients=prober.budget.held_addresses, hint=_spread_hint(prober, count)
    )
    if start is None:
        return None
    observer, variant, accepted = start
    size = _size(prober, variant, accepted)
    if size is None:
        return None
    each = size - HELD_BACK
    if count * each > prober.spendable_bytes:
        left = size_text(max(0, prober.spendable_bytes))
        prober.skip("held-uploads", f"needs {count} x {size_text(each)}, {left} left")
        return None
    body = memoryview(b"".join(bytes(c) for c in prober.body(variant, size).chunks()))[:each]
    spreading = f", from {len(sources)} loopback addresses" if sources else ""
    prober.emit(f"held uploads: {count} x {size_text(size)} declared, {size_text(each)} sent each{spreading}")
    hold = _Hold(body, piece_size(count, each), endpoint, sources)
    try:
        return _hold(prober, observer, hold, variant, size)
    finally:
        hold.close()
        prober.requests += len(hold.uploads) + hold.failed
        prober.bytes_sent += sum(u.sent for u in hold.uploads)


def _hold(
    prober: Prober, observer: MemoryObserver, hold: _Hold, variant: Variant, size: int
) -> HeldResult | None:
    started = time.monotonic()
    before = observer.settled_rss()
    with observer.watch() as watch:
        _open(prober, hold, variant, size)
        until = time.monotonic() + SEND_SECONDS
        whole = hold.trickle(prober, hold.piece, until)
        first = observer.settled_rss()
        for upload in hold.uploads:
            upload.first = upload.sent
        late: int | None = None
        if whole:
            # Three quarters of the way on, read again: a process-wide bound shows as a flat last
            # quarter. (At the defaults that is ~72 MiB sent: the guard's default 64 MiB budget has
            # filled by then with a margin; at two thirds it filled just before the reading.)
            whole = hold.trickle(prober, hold.piece + (len(hold.body) - hold.piece) * 3 // 4, until)
            late = observer.settled_rss()
            for upload in hold.uploads:
                upload.late = upload.sent
        if whole:
            whole = hold.trickle(prober, len(hold.body), until)
        if not whole:
            prober.notes.append(
                f"held uploads: sending stopped after {SEND_SECONDS:g}s (the server read them slowly); "
                "judged on what had been sent by then"
            )
        held = hold.live()
        last = observer.settled_rss()
    if before is None or first is None or last is None:
        prober.skip("held-uploads", "server memory could not be read while the uploads were held")
        return None
    answered = Counter(u.ended for u in hold.uploads if u.ended is not None)
    if hold.failed:
        answered["connect-failed"] += hold.failed
    if hold.not_opened:
        answered["not-opened"] += hold.not_opened
    result = HeldResult(
        variant=variant, size=size, opened=len(hold.uploads), held=len(held),
        held_bytes=sum(u.sent for u in held), first_bytes=sum(u.first for u in held),
        answered=dict(sorted(answered.items())), rss_before=before, rss_first=first, rss_held=last,
        rss_peak=watch.peak, seconds=time.monotonic() - started,
        late_bytes=None if late is None else sum(u.late for u in held), rss_late=late,
        sources=prober.budget.held_addresses,
    )  # fmt: skip
    _stop_if_gone(prober, result)
    return result


def _open(prober: Prober, hold: _Hold, variant: Variant, size: int) -> None:
    """Open up to ``held_uploads`` connections, each with its head queued; stop at the first that
    fails (a full accept queue would make every further connect wait out its timeout), or when
    connecting has taken :data:`OPEN_SECONDS`."""
    request = WireRequest(
        method=prober.target.method, path=prober.path,
        headers=prober.headers(forged_headers(prober.scheme), variant.content_type),
        body=lambda: (), body_length=size,
    )  # fmt: skip
    head = request.head(prober.endpoint.authority)
    timeout = min(prober.budget.request_timeout, 2.0)
    stop = time.monotonic() + OPEN_SECONDS
    for i in range(prober.budget.held_uploads):
        prober.check_time()
        if time.monotonic() >= stop:
            hold.not_opened = prober.budget.held_uploads - i
            return
        source = hold.sources[i % len(hold.sources)] if hold.sources else None
        try:
            sock = hold.endpoint.open(timeout=timeout, send_buffer=prober.budget.send_buffer, source=source)
        except OSError:
            hold.failed = 1
            return
        upload = _Upload(sock, memoryview(head))
        hold.uploads.append(upload)
        hold.selector.register(sock, selectors.EVENT_READ, upload)


def _stop_if_gone(prober: Prober, result: HeldResult) -> None:
    """Nothing held and connections dropped without an answer: does the target still answer?"""
    dropped = result.answered.get("reset", 0) + result.answered.get("closed", 0)
    if result.held or not dropped or prober.alive():
        return
    prober.unavailable_reason = (
        f"after {result.opened} held uploads of {size_text(result.size)} ({dropped} dropped without "
        "an answer) the target answered no request"
    )
    raise ScanStopped(prober.unavailable_reason, unavailable=True)
