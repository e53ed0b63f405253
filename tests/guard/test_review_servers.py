"""Review findings on delivery semantics, under the real servers they were found for.

- uvicorn: a FastAPI background task that raises after the 200 went out must not reopen the
  delivery -- a replay of it is 409, not processed again.
- gunicorn (sync and gthread): a streamed answer that raises midway reaches the sender truncated;
  the sender's retry must be processed (200), and the retry after that is 409.
"""

from __future__ import annotations

import pytest

from hmacguard import Signer

from ._apps.review_apps import SECRET
from ._servers import gunicorn, raw_response, uvicorn

pytestmark = pytest.mark.slow
signer = Signer("github", secrets=SECRET)


def _request(body: bytes) -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in signer.sign(body).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_uvicorn_a_background_task_failing_after_the_answer_keeps_the_delivery_processed() -> None:
    body = b'{"delivery": "background"}'
    with uvicorn("tests.guard._apps.review_apps:fastapi_background") as server:
        first = raw_response(server.port, _request(body))
        replay = raw_response(server.port, _request(body))
    assert (first[0], first[1].get("x-processed")) == (200, "1")
    assert replay[0] == 409, replay  # not processed a second time


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_gunicorn_a_streamed_answer_failing_midway_leaves_the_delivery_to_its_retry(
    worker_class: str,
) -> None:
    body = b'{"delivery": "streamed-%s"}' % worker_class.encode()
    app = "tests.guard._apps.review_apps:wsgi_streaming"
    with gunicorn(app, {}, workers=1, worker_class=worker_class, threads=2) as server:
        first = raw_response(server.port, _request(body))
        retry = raw_response(server.port, _request(body))
        again = raw_response(server.port, _request(body))
    assert first[0] == 200 and b"done" not in first[2]  # the sender got a truncated answer
    assert (retry[0], retry[1].get("x-processed")) == (200, "2")
    assert b"done" in retry[2]
    assert again[0] == 409
