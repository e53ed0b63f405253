# ruff: noqa
# fmt: off
import hashlib
import hmac

from aiohttp import web


async def read_view(request: web.Request) -> web.Response:
    body = await request.read()  # ok: py-unbounded-body-hmac
    return web.Response(text=hmac.new(b"k", body, hashlib.sha256).hexdigest())


app = web.Application(client_max_size=1024 * 1024)  # ok: aiohttp-client-max-size
