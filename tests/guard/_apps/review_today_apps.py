"""Apps for tests/guard/test_review_today.py (real gunicorn).

- ``big_answer``: WSGIGuard (1-second body timeout) in front of an app that reads the verified body
  and answers 32 MiB in one list item -- more than loopback socket buffers hold, so gunicorn's
  ``sendall`` blocks until the client reads. A socket timeout the guard forgot to restore would cut
  that answer short when the client pauses for longer than the body timeout.
"""

from __future__ import annotations

from typing import Any

from hmacguard import Verifier, WSGIGuard

SECRET = "review-today-secret"
BIG = 32 * 1024 * 1024


def _big(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG))])
    return [b"x" * BIG]


big_answer = WSGIGuard(
    _big, verifier=Verifier("github", secrets=SECRET, body_timeout=1.0), paths=["/webhook"]
)
