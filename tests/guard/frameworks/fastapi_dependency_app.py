"""A FastAPI app guarded by the dependency alone (no middleware), served by uvicorn in the tests."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from hmacguard import RateLimiter, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

SECRET = os.environ["HMACGUARD_LAB_SECRET"]
app = FastAPI()
install(app)
verified = VerifiedBodyDependency(
    verifier=Verifier("github", secrets=["an-older-secret", SECRET]),
    rate_limiter=RateLimiter(limit="100/minute"),
)
# Same dependency, but no problem handler on this app: FastAPI's default handler answers.
plain = FastAPI()
plain_verified = VerifiedBodyDependency(verifier=Verifier("github", secrets=[SECRET]))


@app.post("/webhook")
async def webhook(request: Request, body: Annotated[VerifiedBody, Depends(verified)]) -> dict[str, Any]:
    parsed = await request.json()  # Starlette's own parsing sees the verified bytes
    return {"bytes": body.size, "key": body.key_index, "parsed": parsed}


@app.post("/open")
async def unprotected(request: Request) -> dict[str, Any]:
    return {"bytes": len(await request.body())}


@plain.post("/webhook")
async def plain_webhook(body: Annotated[VerifiedBody, Depends(plain_verified)]) -> dict[str, Any]:
    return {"bytes": body.size}
