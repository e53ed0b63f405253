"""What the memory-budget metrics tests share (tests/guard/test_budget_metrics.py and its review):
the delivery, the metric names, a guard over a budget, and reading the budget's samples off a
scrape."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hmacguard import MemoryBudget, Signer, Verifier, WSGIGuard

from ._inprocess import call_wsgi, wsgi_environ

SECRET = "budget-metrics-secret"
SIGNER = Signer("github", secrets=SECRET)
#: Read in four pieces of 64 KiB (the guard's chunk size): counted against a budget with room,
#: below the 256 KiB spool threshold; a spill against a budget of less than two pieces.
BODY = random.Random(11).randbytes(200_000)
IN_USE, LIMIT, SPILLS = (
    "hmacguard_memory_budget_in_use_bytes",
    "hmacguard_memory_budget_limit_bytes",
    "hmacguard_memory_budget_spills_total",
)


def reading(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """An application that reads the body and answers 200."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def budget_guard(budget: MemoryBudget | int, sinks: Any, app: Any = reading) -> WSGIGuard:
    """``app`` behind a guard over ``budget`` (no replay store: the same body may be sent again)."""
    verifier = Verifier("github", secrets=SECRET, replay=None, memory_budget=budget)
    return WSGIGuard(app, verifier=verifier, on_decision=sinks)


def send(app: Any, body: bytes = BODY) -> int:
    """One signed delivery of ``body`` through ``app`` in-process; its status."""
    return call_wsgi(app, wsgi_environ("POST", "/webhook", body, SIGNER.sign(body))).status


#: prometheus_client's multiprocess collector fails a scrape that reads a worker's metric file in the
#: instant between its creation and its sizing (prometheus/client_python#1199, open): a 500, and
#: this error in the server's log. Not the guard's doing; a scrape that meets it is made again.
_EMPTY_FILE_RACE = "struct.error: unpack_from requires a buffer of at least 4 bytes"


def scrape(client: Any, log: Callable[[], str]) -> dict[str, float]:
    """The budget's samples from ``/metrics``; a scrape that meets client_python#1199 (a 500 whose
    traceback in ``log()`` is that race, one more than before) is made again, a few times; any other
    answer but 200 fails with the answer and the log."""
    for _ in range(5):
        races = log().count(_EMPTY_FILE_RACE)
        answer = client.get("/metrics")
        if answer.status_code == 200:
            return budget_samples(answer.text)
        time.sleep(0.05)  # the server writes its log line as it answers
        assert log().count(_EMPTY_FILE_RACE) > races, (answer.status_code, answer.text[:300], log())
    raise AssertionError(f"every scrape met client_python#1199: {log()}")


def tracebacks_but_the_scrape_race(log: str) -> int:
    """Tracebacks in a server's log other than client_python#1199's (see :func:`scrape`)."""
    return log.count("Traceback") - log.count(_EMPTY_FILE_RACE)


def budget_samples(text: str) -> dict[str, float]:
    """The budget's samples in a scrape's text (one receiver: the default, empty one)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (IN_USE, LIMIT, SPILLS):
                assert sample.labels == {"receiver": ""}, sample  # one series, not one per worker
                out[sample.name] = sample.value
    return out


def hold_a_body(port: int, sent: int) -> socket.socket:
    """A delivery of BODY to a server on ``port`` whose first ``sent`` bytes arrive, then nothing:
    the worker holds what it read. The caller closes the connection."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "".join(f"{name}: {value}\r\n" for name, value in SIGNER.sign(BODY).items())
    connection.sendall(
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + head.encode("latin-1")
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode("ascii")
        + BODY[:sent]
    )
    return connection
