# ruff: noqa
# fmt: off
# A strict Content-Length check refuses chunked bodies (411): the read after it is bounded.
import hashlib
import hmac

from flask import Flask, abort, request

app = Flask(__name__)  # ok: flask-max-content-length


@app.post("/hook")
def hook():
    length = request.content_length
    if length is None or length > 1024 * 1024:  # ok: py-content-length-guard-bypass
        abort(411 if length is None else 413)
    body = request.get_data()  # ok: py-unbounded-body-hmac
    return {"sig": hmac.new(b"k", body, hashlib.sha256).hexdigest()}
