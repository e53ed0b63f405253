"""A Stripe-style receiver that checks the HMAC over ``"<t>." + body`` but never the age of ``t``.

``Stripe-Signature: t=<ts>,v1=<hex>``: the signature covers the timestamp, which is only worth
something if the receiver refuses old ones (Stripe's libraries allow 5 minutes). This one does not,
so a delivery captured once can be replayed for ever. It does remember the deliveries it processed
(by signature), so a plain replay of the same request is refused. What ``hmacguard scan --secret
--scheme stripe`` should report: ``stale-timestamp-accepted``, and no other enforcement rule.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Flask, jsonify, request

from hmacguard.lab.apps._common import SECRET, BodyTooLarge, first_delivery, mac_capped

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> Any:
    header = request.headers.get("Stripe-Signature", "")
    items = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = items.get("t"), items.get("v1")
    if not timestamp or not timestamp.isdigit() or not signature:
        return "missing or malformed signature\n", 400
    mac = hmac.new(SECRET, timestamp.encode() + b".", hashlib.sha256)
    try:
        expected = mac_capped(request.stream, request.content_length, mac, prefix="")
    except BodyTooLarge:
        return "body too large\n", 413, {"Connection": "close"}
    if not hmac.compare_digest(expected, signature):
        return "signature mismatch\n", 401
    # The flaw: no check that int(timestamp) is recent.
    if not first_delivery(signature):
        return "already processed\n", 409
    return jsonify(ok=True)
