"""The guard in FastAPI, as docs/guide.md shows: the fix for ``fastapi-body`` and ``fastapi-capped-buffer``.

``ASGIGuard`` verifies ``/webhook`` before routing (413 before reading an oversized Content-Length,
413 the moment a chunked body passes the 1 MiB cap, rate limits applied), and the
``VerifiedBodyDependency`` hands the verified body to the endpoint. The endpoint declares no Pydantic
body: FastAPI would read that before any dependency ran.

Lab knobs (environment): ``HMACGUARD_LAB_RATE`` (requests, default ``600/minute``),
``HMACGUARD_LAB_FAILURES`` (failed verifications, default ``20/minute``), ``HMACGUARD_LAB_REPLAY``
(``off`` turns replay protection off, e.g. to resend one identical signed body on purpose; the
default is on, in memory, as a real service would run it), ``HMACGUARD_LAB_MEMORY_BUDGET`` (the
bytes of bodies all requests may hold in memory at once, default 1 MiB; ``off`` for no budget).
The failure limit counts uploads in flight, so it alone answers all but 20 of many held uploads
from one client with 429; raise it to see the memory budget at work.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal

from fastapi import Depends, FastAPI

from hmacguard import ASGIGuard, RateLimiter, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install
from hmacguard.lab.apps._common import SECRET

REPLAY: Literal["memory"] | None = None if os.environ.get("HMACGUARD_LAB_REPLAY") == "off" else "memory"

#: 1 MiB, where the guard's default is 64 MiB: a scan of 100 held uploads (100 x 250,000 bytes,
#: 24 MiB, what tests/scan/test_held_uploads.py sends the guard pair) never reaches 64 MiB, and a
#: budget the uploads do not pass cannot be told from none. With 1 MiB the scan sees the budget plus
#: the server's own share per connection, well apart from a server that keeps every upload; the
#: scan's default 400 uploads pass the default 64 MiB too (scan/rules/memory_held_uploads.py has the
#: figures).
_BUDGET = os.environ.get("HMACGUARD_LAB_MEMORY_BUDGET", str(1024 * 1024))
MEMORY_BUDGET = None if _BUDGET == "off" else int(_BUDGET)

verifier = Verifier("github", secrets=[SECRET], replay=REPLAY, memory_budget=MEMORY_BUDGET)
rate_limiter = RateLimiter(
    limit=os.environ.get("HMACGUARD_LAB_RATE", "600/minute"),
    failure_limit=os.environ.get("HMACGUARD_LAB_FAILURES", "20/minute"),
)
app = FastAPI()
app.add_middleware(ASGIGuard, verifier=verifier, rate_limiter=rate_limiter, paths=["/webhook"])
install(app)
verified = VerifiedBodyDependency(verifier=verifier)


@app.post("/webhook")
async def webhook(body: Annotated[VerifiedBody, Depends(verified)]) -> dict[str, object]:
    data = body.getvalue()
    try:
        kind = type(json.loads(data)).__name__
    except ValueError:
        kind = "not json"
    return {"ok": True, "bytes": len(data), "json": kind, "key": body.key_index}
