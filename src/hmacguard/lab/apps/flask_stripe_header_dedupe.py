"""A Stripe-style receiver that verifies correctly and checks the age of ``t``, but remembers the
deliveries it processed by the text of their ``Stripe-Signature`` header.

Its parser does what Stripe's libraries do: every ``v1=`` entry is a candidate and other schemes
(``v0=``, test mode) are skipped. So one delivery has many spellings -- another entry added, the
entries reordered -- and each is a header text this receiver has never seen: the identical replay
gets 409, the same delivery with a ``v0=`` entry added gets 200. What ``hmacguard scan --secret
--scheme stripe`` should report: ``replay-accepted`` (the respelled replay), and no other
enforcement rule.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from flask import Flask, jsonify, request

from hmacguard.lab.apps._common import SECRET, BodyTooLarge, first_delivery, mac_capped

app = Flask(__name__)
TOLERANCE = 300


@app.post("/webhook")
def webhook() -> Any:
    header = request.headers.get("Stripe-Signature", "")
    items = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in items if key == "t"]
    candidates = [value for key, _, value in items if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not candidates:
        return "missing or malformed signature\n", 400
    timestamp = timestamps[0]
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        return "timestamp outside the tolerance\n", 400
    mac = hmac.new(SECRET, timestamp.encode() + b".", hashlib.sha256)
    try:
        expected = mac_capped(request.stream, request.content_length, mac, prefix="")
    except BodyTooLarge:
        return "body too large\n", 413, {"Connection": "close"}
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        return "signature mismatch\n", 401
    # The flaw: the header's text is one spelling of the delivery, not the delivery.
    if not first_delivery(header):
        return "already processed\n", 409
    return jsonify(ok=True)
