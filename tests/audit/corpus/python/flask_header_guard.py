# ruff: noqa
# fmt: off
# Content-Length read from the header with a default of 0: a chunked request compares 0 > N.
import hashlib
import hmac

from flask import Flask, abort, request

app = Flask(__name__)  # expect: flask-max-content-length


@app.before_request
def limit_body():
    if int(request.headers.get("Content-Length", 0)) > 1_000_000:  # expect: py-content-length-guard-bypass
        abort(413)


@app.post("/hook")
def hook():
    body = request.get_data()  # expect: py-unbounded-body-hmac
    return {"sig": hmac.new(b"k", body, hashlib.sha256).hexdigest()}
