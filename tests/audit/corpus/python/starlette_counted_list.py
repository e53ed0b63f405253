# ruff: noqa
# fmt: off
# A counted request.stream() loop that appends to a list and joins after it is bounded.
import hashlib
import hmac

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()
LIMIT = 1024 * 1024


@app.post("/hook")
async def hook(request: Request):
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > LIMIT:
            raise HTTPException(413)
        chunks.append(chunk)
    body = b"".join(chunks)  # ok: py-unbounded-body-hmac, starlette-body-limit
    return {"sig": hmac.new(b"k", body, hashlib.sha256).hexdigest()}


@app.post("/hashed")
async def hashed(request: Request):
    mac = hmac.new(b"k", digestmod=hashlib.sha256)
    async for chunk in request.stream():  # ok: starlette-body-limit
        mac.update(chunk)
    return {"sig": mac.hexdigest()}
