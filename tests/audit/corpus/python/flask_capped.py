# ruff: noqa
# fmt: off
# The same reads with MAX_CONTENT_LENGTH set: Werkzeug >= 2.3 bounds every read, chunked included.
import hashlib
import hmac

from flask import Flask, abort, request

app = Flask(__name__)  # ok: flask-max-content-length
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # ok: flask-max-content-length
SECRET = b"s3cret"


@app.post("/get-data")
def get_data_view():
    body = request.get_data()  # ok: py-unbounded-body-hmac
    return {"sig": hmac.new(SECRET, body, hashlib.sha256).hexdigest()}


@app.post("/guarded")
def guarded_view():
    if request.content_length and request.content_length > 1024 * 1024:  # ok: py-content-length-guard-bypass
        abort(413)
    h = hmac.new(SECRET, digestmod=hashlib.sha256)
    for line in request.stream:  # ok: py-stream-line-iteration
        h.update(line)
    return {"sig": h.hexdigest()}
