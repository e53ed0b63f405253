# ruff: noqa
# fmt: off
# A body limiter recognised by what it does (reads receive() and answers 413), not by its name.
class Gate:
    def __init__(self, app, most=1024 * 1024):
        self.app = app
        self.most = most

    async def __call__(self, scope, receive, send):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.most:
                raise RuntimeError("413 Content Too Large")
            return message

        await self.app(scope, counted, send)
