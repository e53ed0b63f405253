"""The guard's Flask extension, as docs/guide.md shows it: the fix for ``flask-get-data``.

The view reads ``request.get_data()`` exactly like the vulnerable target, but only after
``@guard.protected`` has verified the body under a 1 MiB cap (413 before reading an oversized
Content-Length, 413 the moment a chunked body passes the cap) and applied the rate
limits. One gunicorn worker, so that the in-memory replay store (when on) sees every request.

Lab knobs (environment): ``HMACGUARD_LAB_RATE`` (requests, default ``600/minute``),
``HMACGUARD_LAB_FAILURES`` (failed verifications, default ``20/minute``), ``HMACGUARD_LAB_REPLAY``
(``off`` turns replay protection off, e.g. to resend one identical signed body on purpose; the
default is on, in memory, as a real service would run it).
"""

from __future__ import annotations

import os
from typing import Literal

from flask import Flask, request

from hmacguard import RateLimiter, Verifier
from hmacguard.integrations.flask import HmacGuard, verified_body
from hmacguard.lab.apps._common import SECRET

REPLAY: Literal["memory"] | None = None if os.environ.get("HMACGUARD_LAB_REPLAY") == "off" else "memory"

app = Flask(__name__)
guard = HmacGuard(
    app,
    verifier=Verifier("github", secrets=[SECRET], replay=REPLAY),
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
