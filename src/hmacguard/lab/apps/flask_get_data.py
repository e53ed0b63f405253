"""Seed 000's Flask warning: ``request.get_data()`` reads any body whole; no MAX_CONTENT_LENGTH."""

from __future__ import annotations

import hmac

from flask import Flask, abort, request

from hmacguard.lab.apps._common import SIGNATURE_HEADER, github_signature

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> dict[str, object]:
    body = request.get_data()  # the flaw: no cap, the whole body in memory
    expected = github_signature(body)
    if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
        abort(401)
    return {"ok": True, "bytes": len(body)}
