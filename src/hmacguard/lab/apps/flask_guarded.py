"""The guard's Flask extension, as docs/guide.md shows it: the fix for ``flask-get-data``.

The view reads ``request.get_data()`` exactly like the vulnerable target, but only after
``@guard.protected`` has verified the body under a 1 MiB cap (413 before reading an oversized
Content-Length, 413 the moment a chunked body passes the cap), refused replays and applied the rate
limits. One gunicorn worker: the in-memory replay store is per process (use Redis for several).

Lab knobs (environment): ``HMACGUARD_LAB_RATE`` (requests, default ``600/minute``),
``HMACGUARD_LAB_FAILURES`` (failed verifications, default ``20/minute``).
"""

from __future__ import annotations

import os

from flask import Flask, request

from hmacguard import RateLimiter, Verifier
from hmacguard.integrations.flask import HmacGuard, verified_body
from hmacguard.lab.apps._common import SECRET

app = Flask(__name__)
guard = HmacGuard(
    app,
    verifier=Verifier("github", secrets=[SECRET]),
    rate_limiter=RateLimiter(
        limit=os.environ.get("HMACGUARD_LAB_RATE", "600/minute"),
        failure_limit=os.environ.get("HMACGUARD_LAB_FAILURES", "20/minute"),
    ),
)


@app.post("/webhook")
@guard.protected
def webhook() -> dict[str, object]:
    body = request.get_data()  # the verified body: at most 1 MiB, released after the request
    verified = verified_body()
    return {"ok": True, "bytes": len(body), "key": verified.key_index if verified else None}
