# ruff: noqa
# fmt: off
import hashlib
import hmac

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()


@app.post("/body")
async def body_view(request: Request):
    body = await request.body()  # expect: py-unbounded-body-hmac, starlette-body-limit
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
        raise HTTPException(401)
    return {"ok": True}


@app.post("/guarded")
async def guarded_view(request: Request):
    length = request.headers.get("content-length")
    if length and int(length) > 1_000_000:  # expect: py-content-length-guard-bypass
        raise HTTPException(413)
    data = b""
    async for chunk in request.stream():
        data += chunk  # expect: py-unbounded-body-hmac
    return {"sig": hmac.new(b"k", data, hashlib.sha256).hexdigest()}


@app.post("/counted")
async def counted_view(request: Request):
    h = hmac.new(b"k", digestmod=hashlib.sha256)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > 1_000_000:
            raise HTTPException(413)
        h.update(chunk)  # ok: py-unbounded-body-hmac
    return {"sig": h.hexdigest()}
