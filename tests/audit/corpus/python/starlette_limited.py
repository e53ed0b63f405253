# ruff: noqa
# fmt: off
import hashlib
import hmac

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from myproject.middleware import BodySizeLimitMiddleware


async def webhook(request: Request):
    body = await request.body()  # ok: py-unbounded-body-hmac
    return JSONResponse({"sig": hmac.new(b"k", body, hashlib.sha256).hexdigest()})


app = Starlette(middleware=[Middleware(BodySizeLimitMiddleware, max_body_size=1_000_000)])  # ok: starlette-body-limit
