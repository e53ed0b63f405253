# ruff: noqa
# fmt: off
# A Flask application made by subclassing is an application too.
import hashlib
import hmac

from flask import Flask, request


class Server(Flask):  # expect: flask-max-content-length
    def __init__(self):
        Flask.__init__(self, __name__)
        self.add_url_rule("/hook", "hook", self.hook, methods=["POST"])

    def hook(self):
        body = request.get_data()  # expect: py-unbounded-body-hmac
        return hmac.new(b"k", body, hashlib.sha256).hexdigest()


server = Server()
