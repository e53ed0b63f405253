"""A receiver that verifies the signature only when the header is there.

``if signature: verify(...)`` -- a request without the header is processed as if it were signed.
Everything else is right (a 1 MiB cap while streaming, constant-time comparison, a signed delivery
processed once). What
``hmacguard scan`` should report: ``signature-not-enforced``, and no other enforcement rule.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from hmacguard.lab.apps._common import SIGNATURE_HEADER, BodyTooLarge, first_delivery, verify_capped

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> Any:
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        valid = verify_capped(request.stream, request.content_length, signature or "")
    except BodyTooLarge:
        return "body too large\n", 413, {"Connection": "close"}
    if signature and not valid:  # the flaw: no header, no check
        return "signature mismatch\n", 401
    if signature and not first_delivery(signature):
        return "already processed\n", 409
    return jsonify(ok=True)
