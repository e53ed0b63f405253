# ruff: noqa
# fmt: off
import hashlib
import hmac

from aiohttp import web


async def read_view(request: web.Request) -> web.Response:
    body = await request.read()  # expect: py-unbounded-body-hmac
    return web.Response(text=hmac.new(b"k", body, hashlib.sha256).hexdigest())


async def content_view(request: web.Request) -> web.Response:
    body = await request.content.read()  # expect: py-unbounded-body-hmac
    return web.Response(text=hmac.new(b"k", body, hashlib.sha256).hexdigest())


app = web.Application(client_max_size=0)  # expect: aiohttp-client-max-size
