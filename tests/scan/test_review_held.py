"""Review of cf596c0 (the held-uploads phase and memory-held-uploads): three defects, each shown by
a test that failed on that commit and passes since the fix -- the sending had no time bound of its
own (a slow reader took the scan's whole time), a phase cut by the scan's deadline was not listed as
untested (a silent pass), and the rule divided by zero with no minimum and nothing held.
Every server here is in-process on 127.0.0.1 and a free port, stopped when its block ends."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

from hmacguard.report.junit import render_junit
from hmacguard.scan import Budget, PhaseSelection, PidObserver, ScanTarget, run_scan
from hmacguard.scan.config import MiB
from hmacguard.scan.probes.held import OPEN_SECONDS, SEND_SECONDS, _Upload
from tests.scan._servers import _read_head, content_length, serve

ONLY = PhaseSelection.of(["held-uploads"])
BUDGET = Budget(bytes=256 * MiB, seconds=30, request_timeout=2.0, held_uploads=2, held_size=16 * MiB)


def _read_and_answer(conn: socket.socket, stop: threading.Event, pace: Callable[[], int]) -> None:
    """Read a request whole, each read as large as ``pace()`` says (which may wait first), then
    answer 200."""
    head = _read_head(conn, stop)
    if not head:
        return
    _, _, rest = head.partition(b"\r\n\r\n")
    left = content_length(head) - len(rest)
    while left > 0 and not stop.is_set():
        size = pace()
        try:
            data = conn.recv(size)
        except TimeoutError:
            continue
        if not data:
            return
        left -= len(data)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def _slow_when_busy(active: list[int], lock: threading.Lock):  # type: ignore[no-untyped-def]
    """Reads a request whole and answers 200; alone on the server it reads at full speed, with
    another connection open it reads 32 KiB every 0.4 s (a throttled reader, e.g. a server that
    paces its reads per connection) -- it always moves, never stalls for a second."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with lock:
            active[0] += 1

        def pace() -> int:
            with lock:
                busy = active[0] > 1
            if busy:
                time.sleep(0.2)
            return 128 * 1024 if busy else 1 << 20

        try:
            _read_and_answer(conn, stop, pace)
        finally:
            with lock:
                active[0] -= 1

    return handle


def test_a_slow_reader_does_not_hold_the_phase_until_the_scan_runs_out_of_time() -> None:
    active, lock = [0], threading.Lock()
    with serve(_slow_when_busy(active, lock)) as server:
        started = time.monotonic()
        report = run_scan(ScanTarget(server.url), BUDGET, observer=PidObserver(os.getpid()), selection=ONLY)
        took = time.monotonic() - started
    # Here a 16 MiB body read at 640 KB/s a connection: on cf596c0 the phase took ~25 s of a 30 s
    # scan (a slower reader, or a remote target on a slow link, took the scan's whole time and
    # stopped it). Now the sending stops after SEND_SECONDS and what was sent is judged, with a note.
    held = report.held
    assert held is not None, (took, report.untested)
    assert held.seconds < OPEN_SECONDS + SEND_SECONDS + 3, (took, held.seconds)
    assert any("sending stopped" in note for note in report.notes), report.notes
    assert not [u for u in report.untested if "time budget" in u.reason], report.untested


def test_a_held_phase_cut_by_the_deadline_is_listed_untested() -> None:
    active, lock = [0], threading.Lock()
    with serve(_slow_when_busy(active, lock)) as server:
        report = run_scan(ScanTarget(server.url), dataclasses.replace(BUDGET, seconds=12),
                          observer=PidObserver(os.getpid()), selection=ONLY)  # fmt: skip
    assert report.held is None  # the phase raised ScanStopped: no result
    untested = {u.what for u in report.untested}
    # JUnit then shows memory-held-uploads as a passing testcase (no <skipped>).
    case = next(c for c in ET.fromstring(render_junit(report)).iter("testcase")
                if c.get("name", "").startswith("memory-held-uploads"))  # fmt: skip
    assert case.find("skipped") is not None or untested & {"held-uploads", "memory-held-uploads"}, (
        report.untested
    )


def test_the_rule_with_no_minimum_and_nothing_held_does_not_crash() -> None:
    from hmacguard.scan.analysis import ScanFacts, Thresholds, analyse
    from hmacguard.scan.model import HeldResult, Stack, Variant

    result = HeldResult(
        variant=Variant(), size=250_000, opened=400, held=0, held_bytes=0, first_bytes=0,
        answered={"429": 400}, rss_before=40 * MiB, rss_first=41 * MiB, rss_held=41 * MiB,
        rss_peak=None, seconds=1.0,
    )  # fmt: skip
    facts = ScanFacts("http://127.0.0.1:1/webhook", "POST", Variant(), (), (), None, None, None, Stack(),
                      held=result)  # fmt: skip
    findings, diagnostics = analyse(facts, Thresholds(held_min_bytes=0))
    assert not diagnostics, diagnostics
    assert "memory-held-uploads" not in {f.rule for f in findings}


def test_an_early_answer_before_a_reset_is_recorded_as_the_answer() -> None:
    """A server that answers 413 at once and closes with the body unread resets the connection; the
    upload's next send fails. The answer arrived first and is still readable: the upload ended
    with 413 (what the evidence's ``answered`` reports), not with a reset -- which would count it
    as dropped without an answer, the sign of a server that died."""
    listener = socket.create_server(("127.0.0.1", 0))
    answered = threading.Event()

    def answer_and_close() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(64)  # part of the head: the rest stays unread, so close() sends a reset
            conn.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
        answered.set()

    server = threading.Thread(target=answer_and_close, daemon=True)
    server.start()
    try:
        sock = socket.create_connection(listener.getsockname(), timeout=2)
        with sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            assert answered.wait(5)
            time.sleep(0.2)  # the reset has arrived
            sock.setblocking(False)
            upload = _Upload(sock, memoryview(b""))
            body = memoryview(b"y" * 100_000)
            for _ in range(50):  # the first sends may still be taken by the kernel
                upload.write(body, len(body))
                if upload.ended is not None:
                    break
                time.sleep(0.01)
            assert upload.ended == "413"
    finally:
        server.join(5)
        listener.close()


def _answering(peers: list[str]):  # type: ignore[no-untyped-def]
    """Reads each request whole, answers 200, and notes the address each connection came from."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        peers.append(conn.getpeername()[0])
        _read_and_answer(conn, stop, lambda: 65536)

    return handle


SPREAD = dataclasses.replace(BUDGET, held_uploads=10, held_size=64 * 1024, held_sources=5)


def test_held_sources_spread_the_uploads_over_loopback_addresses_in_turn() -> None:
    peers: list[str] = []
    with serve(_answering(peers)) as server:
        report = run_scan(ScanTarget(server.url), SPREAD, observer=PidObserver(os.getpid()), selection=ONLY)
    assert report.held is not None and report.held.sources == 5, report.untested
    held_from = sorted(p for p in peers if p != "127.0.0.1")  # 127.0.0.1: the size probe
    assert held_from == sorted([f"127.0.0.{n}" for n in range(2, 7)] * 2)


def test_held_sources_need_a_target_on_127_0_0_0_8() -> None:
    peers: list[str] = []
    with serve(_answering(peers), host="::1") as server:
        report = run_scan(ScanTarget(server.url), SPREAD, observer=PidObserver(os.getpid()), selection=ONLY)
    assert report.held is None
    reasons = {u.what: u.reason for u in report.untested}
    assert "127.0.0.0/8" in reasons["held-uploads"], reasons
    assert all(p == "::1" for p in peers)
