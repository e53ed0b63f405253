"""Review of acca955 (memory-held-uploads says up to where it looked): the finding put the server's
RSS growth where it says which process-wide bounds the scan ruled out. A bound counts body bytes,
and RSS grows by more than the bytes sent (copies, per-connection costs): the finding then claimed to
have ruled out bounds the uploads never reached. Shown on a real scan of an in-process server on
127.0.0.1 whose bound lies above everything the scan sent."""

from __future__ import annotations

import os
import socket
import threading

from hmacguard.scan import Budget, PhaseSelection, PidObserver, ScanTarget, run_scan
from hmacguard.scan.config import MiB
from hmacguard.scan.probes.base import size_text
from tests.scan._servers import _read_head, content_length, serve

ONLY = PhaseSelection.of(["held-uploads"])
UPLOADS, SIZE = 40, 1_000_000  # about 38 MiB sent in all
#: The server's process-wide bound on body bytes kept in memory: above all the scan sends.
BOUND = 60_000_000


def _bounded_keeper():  # type: ignore[no-untyped-def]
    """Keeps each body in memory twice (its chunks and a joined copy, as a parser that buffers does)
    until the connection ends, up to BOUND body bytes for the whole process; past that a chunk is
    dropped, as a budget sends it to disk. Answers 200 once a body is whole."""
    lock = threading.Lock()
    kept = [0]

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        head = _read_head(conn, stop)
        if not head:
            return
        _, _, rest = head.partition(b"\r\n\r\n")
        left = content_length(head)
        chunks: list[bytes] = []
        joined = bytearray()
        counted = 0
        try:
            data = rest
            while True:
                if data:
                    left -= len(data)
                    with lock:
                        fits = kept[0] + len(data) <= BOUND
                        if fits:
                            kept[0] += len(data)
                    if fits:
                        counted += len(data)
                        chunks.append(data)
                        joined += data
                if left <= 0 or stop.is_set():
                    break
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    data = b""
                    continue
                if not data:
                    return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        finally:
            with lock:
                kept[0] -= counted

    return handle


def test_a_finding_does_not_claim_to_have_ruled_out_bounds_above_what_it_sent() -> None:
    budget = Budget(bytes=256 * MiB, seconds=60, request_timeout=3.0, held_uploads=UPLOADS, held_size=SIZE)
    with serve(_bounded_keeper()) as server:
        report = run_scan(ScanTarget(server.url), budget, observer=PidObserver(os.getpid()), selection=ONLY)
    held = report.held
    assert held is not None, report.untested
    assert held.held == UPLOADS and held.held_bytes < BOUND, held
    finding = next((f for f in report.findings if f.rule == "memory-held-uploads"), None)
    assert finding is not None, held  # it keeps every byte (twice): nothing bounded it here
    # The server held everything it was sent, twice: its RSS grew past its own bound.
    assert held.growth > BOUND, (size_text(held.growth), held)
    claimed = finding.evidence.values["no_bound_passed_below_bytes"]
    # A bound is passed by body bytes; these uploads sent held_bytes in all, so no bound above that
    # was passed or could have been -- here one at BOUND was there all along, never reached.
    assert isinstance(claimed, int) and claimed <= held.held_bytes < BOUND, (
        f"claims no bound below {size_text(claimed)} though the uploads sent {size_text(held.held_bytes)} "
        f"and the server's {size_text(BOUND)} bound was never reached"
    )
    assert f"passed below {size_text(claimed)}" in finding.evidence.summary
