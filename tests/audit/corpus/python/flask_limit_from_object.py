# ruff: noqa
# fmt: off
# The configuration comes from an object the audit cannot read: the limit may be there.
import hashlib
import hmac

from flask import Flask, request

app = Flask(__name__)  # ok: flask-max-content-length
app.config.from_object("settings.Production")


@app.post("/hook")
def hook():
    return {"sig": hmac.new(b"k", request.get_data(), hashlib.sha256).hexdigest()}  # ok: py-unbounded-body-hmac
