"""Apps for the review's real-server tests (tests/guard/test_review_servers.py).

- ``fastapi_background``: FastAPI under ASGIGuard; the endpoint answers 200 and schedules a
  background task that raises (an e-mail server down) -- after the answer was sent.
- ``wsgi_streaming``: a WSGI app under WSGIGuard whose streamed answer raises after its first chunk
  the first time a delivery is seen (the database blinked), and completes on its retry.

Both count what they processed in the ``X-Processed`` header of their answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import PlainTextResponse

from hmacguard import ASGIGuard, Verifier, WSGIGuard

SECRET = "review-servers-secret"
_processed: dict[str, int] = {}


def _fail_later() -> None:
    raise RuntimeError("the e-mail server is down")


_api = FastAPI()


@_api.post("/webhook")
async def _webhook(background: BackgroundTasks) -> PlainTextResponse:
    _processed["asgi"] = _processed.get("asgi", 0) + 1
    background.add_task(_fail_later)
    return PlainTextResponse("accepted", headers={"X-Processed": str(_processed["asgi"])})


fastapi_background = ASGIGuard(_api, verifier=Verifier("github", secrets=SECRET))


def _streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    body = environ["wsgi.input"].read()
    seen = _processed.get(body.decode(), 0)
    _processed[body.decode()] = seen + 1
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Processed", str(seen + 1))])
    yield b"processing..."
    if not seen:
        raise RuntimeError("the database blinked mid-stream")
    yield b"done"


wsgi_streaming = WSGIGuard(_streaming, verifier=Verifier("github", secrets=SECRET))
