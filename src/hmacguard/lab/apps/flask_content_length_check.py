"""Seed 000's Flask "fix", as the article wrote it.

Two flaws: the Content-Length check is skipped when there is no Content-Length (chunked), and
``for chunk in request.stream`` iterates *lines*, so a body without newlines is one huge "chunk".
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, abort, request

from hmacguard.lab.apps._common import SECRET, SIGNATURE_HEADER

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> dict[str, object]:
    if request.content_length and request.content_length > 1024 * 1024:  # skipped when chunked
        abort(413)
    h = hmac.new(SECRET, digestmod=hashlib.sha256)
    for chunk in request.stream:  # yields lines, not bounded chunks
        h.update(chunk)
    expected = "sha256=" + h.hexdigest()
    if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
        abort(401)
    return {"ok": True}
