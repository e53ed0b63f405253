"""The failed-verification budget holds under concurrency, and server-side framing errors count.

200 forged 1 MiB uploads from one client at once, against ``failure_limit="20/minute"``: a request
counts against the budget from its admission, so at most 20 bodies are read (answered 401 after
reading) and the rest are answered 429 before their body is read. Under uvicorn (one event loop, any
number of requests in flight) and gunicorn gthread (8 threads).

A malformed chunked body makes gunicorn's reader raise inside the guard's read: the client gets a
400 problem+json (not gunicorn's own text/html page) and the failure is charged.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from hmacguard.lab import RunningTarget, get_target, run_target

from .guardwire import MiB, post

pytestmark = pytest.mark.slow
FORGED = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "Content-Type": "application/json"}
CONCURRENT = 200
BUDGET = 20


def _storm(running: RunningTarget) -> tuple[Counter[int | None], set[str]]:
    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda _: post(running, FORGED, MiB, timeout=60), range(CONCURRENT)))
    statuses = Counter(a.status for a in answers)
    details = {json.loads(a.body)["detail"] for a in answers if a.status == 429}
    return statuses, details


@pytest.mark.parametrize(
    "target",
    [
        dataclasses.replace(get_target("fastapi-guarded")),
        dataclasses.replace(get_target("flask-guarded"), worker_class="gthread", threads=8),
    ],
    ids=["uvicorn", "gunicorn-gthread"],
)
def test_concurrent_forged_uploads_read_at_most_the_failure_budget(target: object) -> None:
    env = {"HMACGUARD_LAB_FAILURES": f"{BUDGET}/minute", "HMACGUARD_LAB_RATE": "100000/minute"}
    with run_target(target, env=env) as running:  # type: ignore[arg-type]
        statuses, details = _storm(running)
    print(f"\n{running.target.server.value}: {dict(statuses)}")
    # Every body read was verified and failed (401); no more than the budget were read.
    assert statuses[401] <= BUDGET, statuses
    assert statuses[401] + statuses[429] == CONCURRENT, statuses
    # The others were refused at admission, before the guard read a byte of their body (what a
    # client got onto the wire sat in loopback socket buffers, several MiB deep, not in the app).
    assert details == {"too many failed verifications"}


def _raw(running: RunningTarget, request: bytes) -> bytes:
    with socket.create_connection((running.host, running.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:  # refusals close the connection: read to the end
            piece = sock.recv(65536)
            if not piece:
                return data
            data += piece


def test_a_malformed_chunk_is_a_problem_and_charged_as_a_failure() -> None:
    target = get_target("flask-guarded")
    env = {"HMACGUARD_LAB_FAILURES": "2/minute"}
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n\r\n"
    )
    with run_target(target, env=env) as running:
        answers = [_raw(running, head + b"zz\r\nhello\r\n0\r\n\r\n") for _ in range(3)]
        log = running.log()
    first = answers[0].decode("latin-1")
    assert first.startswith("HTTP/1.1 400"), first
    assert "application/problem+json" in first and "body-malformed" in first, first
    # Two failures spent the budget: the third is refused before its body is even looked at.
    assert answers[2].startswith(b"HTTP/1.1 429"), answers[2][:200]
    assert "Traceback" not in log, log
