# ruff: noqa
# fmt: off
import hashlib
import hmac
import secrets

from flask import Flask, abort, request

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
KEY = b"k"


def compute_signature(body: bytes) -> str:
    return hmac.new(KEY, body, hashlib.sha256).hexdigest()


@app.post("/eq")
def eq_view():
    sig = request.headers.get("X-Signature", "")
    if compute_signature(request.get_data()) == sig:  # expect: py-signature-compare-timing
        return {"ok": True}
    abort(401)


@app.post("/in")
def in_view():
    expected = hmac.new(KEY, request.get_data(), hashlib.sha256).hexdigest()
    candidates = request.headers.get("X-Signature", "").split(",")
    if expected not in candidates:  # expect: py-signature-compare-timing
        abort(401)
    return {"ok": True}


@app.post("/constant")
def constant_view():
    sig = request.headers.get("X-Signature", "")
    if sig == "" or sig.split("=")[0] != "sha256":  # ok: py-signature-compare-timing
        abort(400)
    if not hmac.compare_digest(compute_signature(request.get_data()), sig):  # ok: py-compare-digest-none
        abort(401)
    return {"ok": True}


@app.post("/none-direct")
def none_direct_view():
    if not secrets.compare_digest(compute_signature(request.get_data()), request.headers.get("X-Signature")):  # expect: py-compare-digest-none
        abort(401)
    return {"ok": True}


@app.post("/none-guarded")
def none_guarded_view():
    sig = request.headers.get("X-Signature")
    if not sig:
        abort(400)
    if not hmac.compare_digest(compute_signature(request.get_data()), sig):  # ok: py-compare-digest-none
        abort(401)
    return {"ok": True}


@app.post("/none-or")
def none_or_view():
    sig = request.headers.get("X-Signature") or ""
    if not hmac.compare_digest(compute_signature(request.get_data()), sig):  # ok: py-compare-digest-none
        abort(401)
    return {"ok": True}


@app.post("/len")
def len_view():
    sig = request.headers.get("X-Signature", "")
    if len(sig) != 64:  # ok: py-signature-compare-timing
        abort(400)
    return {"ok": hmac.compare_digest(compute_signature(request.get_data()), sig)}
