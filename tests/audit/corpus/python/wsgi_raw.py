# ruff: noqa
# fmt: off
import hashlib
import hmac


def application(environ, start_response):
    body = environ["wsgi.input"].read()  # expect: py-unbounded-body-hmac
    digest = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    if digest != environ.get("HTTP_X_SIGNATURE"):  # expect: py-signature-compare-timing
        start_response("401 Unauthorized", [])
        return [b""]
    start_response("200 OK", [])
    return [b"ok"]
