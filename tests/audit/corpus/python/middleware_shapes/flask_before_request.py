# ruff: noqa
# fmt: off
from flask import Flask, g, request

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024


@app.before_request
def keep_raw_body():
    g.raw_body = request.get_data()  # expect: py-body-attached-to-request
    request.environ["hook.signature"] = request.headers.get("X-Hub-Signature-256")  # expect: py-body-attached-to-request
