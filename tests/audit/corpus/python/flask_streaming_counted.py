# ruff: noqa
# fmt: off
# A correct receiver: the Content-Length check is only an early refusal; the loop counts bytes.
import hashlib
import hmac

from flask import Flask, Response, request

app = Flask(__name__)  # ok: flask-max-content-length
CAP = 1024 * 1024


@app.post("/webhook")
def webhook():
    signature = request.headers.get("X-Hub-Signature-256")
    if signature is None:
        return Response("missing signature", status=400)
    if request.content_length is not None and request.content_length > CAP:  # ok: py-content-length-guard-bypass
        return Response("too large", status=413)
    h = hmac.new(b"k", digestmod=hashlib.sha256)
    stream = request.stream
    total = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if total > CAP:
            return Response("too large", status=413)
        h.update(chunk)
    if not hmac.compare_digest("sha256=" + h.hexdigest(), signature):  # ok: py-compare-digest-none
        return Response("bad signature", status=401)
    return Response("ok")
