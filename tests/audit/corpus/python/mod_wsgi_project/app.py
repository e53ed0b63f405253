# ruff: noqa
# fmt: off
# Served by mod_wsgi-express (start.sh), whose --limit-request-body caps every body.
import hashlib
import hmac

from flask import Flask, request

app = Flask(__name__)  # ok: flask-max-content-length


@app.post("/hook")
def hook():
    body = request.get_data()  # ok: py-unbounded-body-hmac
    return hmac.new(b"k", body, hashlib.sha256).hexdigest()
