# ruff: noqa
# fmt: off
import hashlib
import hmac

from flask import Flask, request

app = Flask(__name__)
app.config.update(MAX_CONTENT_LENGTH=100 * 1024 * 1024)  # expect: flask-max-content-length


@app.post("/hook")
def hook():
    return {"sig": hmac.new(b"k", request.get_data(), hashlib.sha256).hexdigest()}  # ok: py-unbounded-body-hmac
