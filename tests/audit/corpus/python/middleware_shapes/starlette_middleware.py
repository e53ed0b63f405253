# ruff: noqa
# fmt: off
from starlette.middleware.base import BaseHTTPMiddleware


class KeepBody(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        body = await request.body()
        request.state.raw_body = body  # expect: py-body-attached-to-request
        return await call_next(request)


class RawBodyASGI:
    """A pure ASGI middleware that collects the body from receive() and puts it in the scope."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        scope["raw_body"] = body  # expect: py-body-attached-to-request
        await self.app(scope, receive, send)


def wsgi_keep_body(app):
    def middleware(environ, start_response):
        environ["raw_body"] = environ["wsgi.input"].read()  # expect: py-body-attached-to-request, py-unbounded-body-read
        return app(environ, start_response)

    return middleware
