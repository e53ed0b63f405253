"""A FastAPI app whose catch-all exception handler answers 200 ('never make the sender retry'), for
tests/guard/test_catch_all_servers.py (real uvicorn and hypercorn).

``/webhook``: guarded by ASGIGuard added with ``add_middleware``; ``/dependency``: guarded by the
dependency. Both endpoints raise. ``install(app)`` puts the settler around Starlette's whole stack.
``GET /calls`` tells how many times each endpoint ran.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoint's annotations at run time.
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from hmacguard import ASGIGuard, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

SECRET = "catch-all-secret"
calls = {"webhook": 0, "dependency": 0}
app = FastAPI()
install(app)
app.add_middleware(ASGIGuard, verifier=Verifier("github", secrets=SECRET), paths=["/webhook"])
dependency = VerifiedBodyDependency(verifier=Verifier("github", secrets=SECRET))


@app.exception_handler(Exception)
async def swallow(request: Any, exc: Exception) -> PlainTextResponse:
    return PlainTextResponse("ignored", status_code=200)


@app.post("/webhook")
async def webhook() -> PlainTextResponse:
    calls["webhook"] += 1
    raise RuntimeError("the handler fails after doing part of its work")


@app.post("/dependency")
async def with_dependency(body: Annotated[VerifiedBody, Depends(dependency)]) -> PlainTextResponse:
    calls["dependency"] += 1
    raise RuntimeError("the handler fails after doing part of its work")


@app.get("/calls")
async def count() -> dict[str, int]:
    return calls
