# ruff: noqa
# fmt: off
# request.json is the whole body, parsed: re-serialised into an HMAC it is still unbounded.
import hashlib
import hmac
import json

from flask import Flask, request

app = Flask(__name__)  # expect: flask-max-content-length


@app.post("/hook")
def hook():
    msg = json.dumps(request.json, separators=(",", ":")).encode()  # expect: py-unbounded-body-hmac
    return hmac.new(b"k", msg, hashlib.sha256).hexdigest()
