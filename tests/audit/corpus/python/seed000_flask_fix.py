# ruff: noqa
# fmt: off
# Seed 000's Flask "fix", as the article wrote it (it imports Request, not request).
from flask import Flask, Request, abort
import hmac
import hashlib
app = Flask(__name__)  # expect: flask-max-content-length
@app.route('/sign', methods=['POST'])
def sign():
    # 1. Enforce max size via Flask config or manual check
    if request.content_length and request.content_length > 1024 * 1024:  # expect: py-content-length-guard-bypass
        abort(413)
    # 2. Stream the input in chunks (Flask's request.stream)
    secret = b'your-secret-key'
    h = hmac.new(secret, digestmod=hashlib.sha256)
    for chunk in request.stream:  # expect: py-stream-line-iteration
        h.update(chunk)
    signature = h.hexdigest()
    return {'signature': signature}
