"""The guard in FastAPI, as docs/guide.md shows: the fix for ``fastapi-body``.

``ASGIGuard`` verifies ``/webhook`` before routing (413 before reading an oversized Content-Length,
413 the moment a chunked body passes the 1 MiB cap, rate limits applied), and the
``VerifiedBodyDependency`` hands the verified body to the endpoint. The endpoint declares no Pydantic
body: FastAPI would read that before any dependency ran.

Lab knobs (environment): ``HMACGUARD_LAB_RATE`` (requests, default ``600/minute``),
``HMACGUARD_LAB_FAILURES`` (failed verifications, default ``20/minute``), ``HMACGUARD_LAB_REPLAY``
(``memory`` turns replay protection on). Replay protection is off by default here only because the
lab's own instruments (its tests, the scanner's retention probe) resend one identical signed body
hundreds of times, which a replay store rightly refuses with 409; a real service keeps the
default, ``replay="memory"`` (or Redis).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal

from fastapi import Depends, FastAPI

from hmacguard import ASGIGuard, RateLimiter, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, add_problem_handler
from hmacguard.lab.apps._common import SECRET

REPLAY: Literal["memory"] | None = "memory" if os.environ.get("HMACGUARD_LAB_REPLAY") == "memory" else None

verifier = Verifier("github", secrets=[SECRET], replay=REPLAY)
rate_limiter = RateLimiter(
    limit=os.environ.get("HMACGUARD_LAB_RATE", "600/minute"),
    failure_limit=os.environ.get("HMACGUARD_LAB_FAILURES", "20/minute"),
)
app = FastAPI()
app.add_middleware(ASGIGuard, verifier=verifier, rate_limiter=rate_limiter, paths=["/webhook"])
add_problem_handler(app)
verified = VerifiedBodyDependency(verifier=verifier)


@app.post("/webhook")
async def webhook(body: Annotated[VerifiedBody, Depends(verified)]) -> dict[str, object]:
    data = body.getvalue()
    try:
        kind = type(json.loads(data)).__name__
    except ValueError:
        kind = "not json"
    return {"ok": True, "bytes": len(data), "json": kind, "key": body.key_index}
