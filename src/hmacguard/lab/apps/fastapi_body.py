"""``await request.body()`` under uvicorn: the whole body in memory, no limit."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, HTTPException, Request

from hmacguard.lab.apps._common import SIGNATURE_HEADER, github_signature

app = FastAPI()


@app.post("/webhook")
async def webhook(request: Request) -> dict[str, object]:
    body = await request.body()  # the flaw: unbounded
    if not hmac.compare_digest(github_signature(body), request.headers.get(SIGNATURE_HEADER, "")):
        raise HTTPException(status_code=401, detail="signature mismatch")
    return {"ok": True, "bytes": len(body)}
