# ruff: noqa
# fmt: off
# Seed 000's warning ("request.get_data() without a content_length check") and variants.
import hashlib
import hmac

import stripe
from flask import Flask, abort, request

app = Flask(__name__)  # expect: flask-max-content-length
SECRET = b"s3cret"


def sign(payload: bytes) -> str:
    return "sha256=" + hmac.new(SECRET, payload, hashlib.sha256).hexdigest()


@app.post("/get-data")
def get_data_view():
    body = request.get_data()  # expect: py-unbounded-body-hmac
    mac = hmac.new(SECRET, body, hashlib.sha256)
    return {"signature": mac.hexdigest()}


@app.post("/data-digest")
def data_digest_view():
    return {"sig": hmac.digest(SECRET, request.data, "sha256").hex()}  # expect: py-unbounded-body-hmac


@app.post("/stream-read")
def stream_read_view():
    raw = request.stream.read()  # expect: py-unbounded-body-hmac
    return {"sha": hashlib.sha256(raw).hexdigest()}


@app.post("/helper")
def helper_view():
    received = request.headers.get("X-Hub-Signature-256", "")
    expected = sign(request.get_data())  # expect: py-unbounded-body-hmac
    if not hmac.compare_digest(expected, received):
        abort(401)
    return {"ok": True}


@app.post("/stripe")
def stripe_view():
    payload = request.data  # expect: py-unbounded-body-hmac
    event = stripe.Webhook.construct_event(payload, request.headers["Stripe-Signature"], "whsec")
    return {"type": event["type"]}


@app.post("/accumulate")
def accumulate_view():
    body = b""
    while True:
        chunk = request.stream.read(65536)
        if not chunk:
            break
        body += chunk  # expect: py-unbounded-body-hmac
    return {"sig": sign(body)}


@app.post("/counted")
def counted_view():
    h = hmac.new(SECRET, digestmod=hashlib.sha256)
    total = 0
    parts = []
    while True:
        chunk = request.stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if total > 1024 * 1024:
            abort(413)
        parts.append(chunk)  # ok: py-unbounded-body-hmac
        h.update(chunk)
    return {"sig": h.hexdigest(), "n": len(parts)}


@app.post("/not-hashed")
def not_hashed_view():
    data = request.get_data()  # ok: py-unbounded-body-hmac
    return {"bytes": len(data)}


@app.post("/timing")
def timing_view():
    expected = sign(request.get_data())  # expect: py-unbounded-body-hmac
    if expected != request.headers.get("X-Hub-Signature-256"):  # expect: py-signature-compare-timing
        abort(401)
    return {"ok": True}


@app.post("/none")
def none_view():
    header = request.headers.get("X-Hub-Signature-256")
    if not hmac.compare_digest(sign(request.get_data()), header):  # expect: py-unbounded-body-hmac, py-compare-digest-none
        abort(401)
    return {"ok": True}
