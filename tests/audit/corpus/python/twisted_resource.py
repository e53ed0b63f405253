# ruff: noqa
# fmt: off
# Twisted spools the whole body into request.content; read() loads all of it.
import hashlib
import hmac

from twisted.web import resource


class Hook(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        body = request.content.read()  # expect: py-unbounded-body-hmac
        mine = hmac.new(b"k", body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(mine, request.getHeader("x-signature") or "")
        return b"ok" if ok else b"no"


class Upload(resource.Resource):
    isLeaf = True

    def render_PUT(self, request):
        data = request.content.read()  # expect: py-unbounded-body-read
        return str(len(data)).encode()
