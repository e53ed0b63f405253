"""A correct receiver with no de-duplication: the same signed delivery is processed every time.

The signature is verified under a 1 MiB cap and compared in constant time, but nothing remembers a
delivery, so a captured request can be replayed (GitHub signs no timestamp, so its age cannot help
either). What ``hmacguard scan --secret`` should report: ``replay-accepted``, and no other
enforcement rule.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from hmacguard.lab.apps._common import SIGNATURE_HEADER, BodyTooLarge, verify_capped

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> Any:
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return "missing signature\n", 400
    try:
        valid = verify_capped(request.stream, request.content_length, signature)
    except BodyTooLarge:
        return "body too large\n", 413, {"Connection": "close"}
    if not valid:
        return "signature mismatch\n", 401
    return jsonify(ok=True)  # the flaw: processed again on every replay
