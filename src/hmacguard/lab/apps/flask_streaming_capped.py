"""A correct hand-written receiver: the cap holds while streaming, chunked bodies included.

- A Content-Length over the cap is refused before a byte of the body is read.
- The body is read in bounded chunks and counted; past the cap the request is refused at once.
- Refusals carry ``Connection: close``: the rest of the body is never drained.
- The signature is compared in constant time, and a missing header is a 400, not a TypeError.
- A delivery is processed once: the same signed request again is a 409 (remembered by signature,
  across the server's workers), so a captured delivery cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request

from hmacguard.lab.apps._common import SECRET, SIGNATURE_HEADER, first_delivery

app = Flask(__name__)
CAP = 1024 * 1024
CHUNK = 64 * 1024


def _refuse(status: int, detail: str) -> Response:
    response = Response(detail + "\n", status=status, mimetype="text/plain")
    if status == 413:
        response.headers["Connection"] = "close"
    return response


@app.post("/webhook")
def webhook() -> Response:
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None or not signature.startswith("sha256="):
        return _refuse(400, "missing or malformed signature")
    if request.content_length is not None and request.content_length > CAP:
        return _refuse(413, "body too large")
    h = hmac.new(SECRET, digestmod=hashlib.sha256)
    stream = request.stream
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > CAP:
            return _refuse(413, "body too large")
        h.update(chunk)
    if not hmac.compare_digest("sha256=" + h.hexdigest(), signature):
        return _refuse(401, "signature mismatch")
    if not first_delivery(signature):
        return _refuse(409, "already processed")
    return Response('{"ok": true}\n', mimetype="application/json")
