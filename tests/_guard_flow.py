"""A guarded WSGI flow, run by tests/test_install_compiled.py in two builds: prints each answer as JSON."""

import io
import json

import hmacguard.guard.lane as lane
from hmacguard import Signer, Verifier, WSGIGuard

SECRET = "install-secret"
signer = Signer("github", secrets=SECRET)


def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


guard = WSGIGuard(app, verifier=Verifier("github", secrets=SECRET, max_body=1024))


class OddInput:
    """A server's wsgi.input whose read() returns a bytearray."""

    def __init__(self, body):
        self.body = body

    def read(self, size=-1):
        return bytearray(self.body)


def status(body, headers=None, stream=None, length=None):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hook",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body) if length is None else length),
        "wsgi.input": stream or io.BytesIO(body),
    }
    for name, value in (signer.sign(body) if headers is None else headers).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen = []
    result = guard(environ, lambda s, h, e=None: seen.append(int(s[:3])))
    b"".join(result)
    getattr(result, "close", lambda: None)()
    return seen[-1]


out = {
    "build": "compiled" if not lane.__file__.endswith(".py") else "pure",
    "fresh": status(b'{"n": 1}'),
    "replay": status(b'{"n": 1}'),
    "forged": status(b'{"n": 2}', {"X-Hub-Signature-256": "sha256=" + "0" * 64}),
    "unsigned": status(b'{"n": 3}', {}),
    "too_large": status(b"x" * 2048),
    "bytearray_read": status(b'{"n": 4}', stream=OddInput(b'{"n": 4}')),
    "short_body": status(b'{"n": 5}', length=100),
}
print(json.dumps(out, sort_keys=True))
