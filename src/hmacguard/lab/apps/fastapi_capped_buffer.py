"""Correct for one request, not across requests: a capped, streaming receiver that keeps the chunks.

Everything a careful reviewer checks for one request is here: a Content-Length over the cap is
refused before a byte is read, the body is streamed and counted (chunked bodies too) and refused the
moment it passes 1 MiB, refusals close the connection, the signature is compared in constant time,
and a delivery is processed once. The flaw is the realistic "capped, so safe" one: the handler
needs the event after verifying it, so it keeps the chunks as they arrive. One request holds at most
1 MiB -- but uvicorn takes as many connections as clients open, each upload is held until its last
byte arrives, and starting one needs no secret: a few hundred slow forged uploads hold a few hundred
times the body. The fix is a bound on what all requests hold at once (hmacguard's ``memory_budget``,
which ``fastapi-guarded`` shows) or a buffering proxy in front.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import FastAPI, Request, Response

from hmacguard.lab.apps._common import CAP, SECRET, SIGNATURE_HEADER, first_delivery

app = FastAPI()


def _refuse(status: int, detail: str) -> Response:
    headers = {"Connection": "close"} if status == 413 else None
    return Response(detail + "\n", status_code=status, media_type="text/plain", headers=headers)


@app.post("/webhook")
async def webhook(request: Request) -> Response:
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None or not signature.startswith("sha256="):
        return _refuse(400, "missing or malformed signature")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > CAP:
        return _refuse(413, "body too large")
    mac = hmac.new(SECRET, digestmod=hashlib.sha256)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > CAP:
            return _refuse(413, "body too large")
        mac.update(chunk)
        chunks.append(chunk)  # the flaw: bounded per request, held by every open upload at once
    if not hmac.compare_digest("sha256=" + mac.hexdigest(), signature):
        return _refuse(401, "signature mismatch")
    if not first_delivery(signature):
        return _refuse(409, "already processed")
    body = b"".join(chunks)
    return Response(f'{{"ok": true, "bytes": {len(body)}}}\n', media_type="application/json")
