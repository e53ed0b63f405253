"""A multi-tenant FastAPI receiver (review of a0f22ea), served by uvicorn in
tests/guard/test_review_multiprovider.py.

One ``ASGIGuard`` holding every tenant's secret over ``/hooks/*``; ``/hooks/a`` and ``/hooks/b``
each depend on their own tenant's ``VerifiedBodyDependency``; ``/other/c`` is outside the
middleware's paths and depends on tenant B's. ``/handled`` lists what the handlers ran on.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoints' annotations at run time.
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from hmacguard import ASGIGuard, VerifiedBody, Verifier
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install

SECRET_A, SECRET_B = "review-tenant-a", "review-tenant-b"

api = FastAPI()
install(api)
handled: list[tuple[str, str]] = []
tenant_a = VerifiedBodyDependency(verifier=Verifier("github", secrets=SECRET_A))
tenant_b = VerifiedBodyDependency(verifier=Verifier("github", secrets=SECRET_B))


@api.post("/hooks/a")
async def hook_a(body: Annotated[VerifiedBody, Depends(tenant_a)]) -> dict[str, Any]:
    handled.append(("a", body.getvalue().decode()))
    return {}


@api.post("/hooks/b")
async def hook_b(body: Annotated[VerifiedBody, Depends(tenant_b)]) -> dict[str, Any]:
    handled.append(("b", body.getvalue().decode()))
    return {}


@api.post("/other/c")
async def other_c(body: Annotated[VerifiedBody, Depends(tenant_b)]) -> dict[str, Any]:
    handled.append(("c", body.getvalue().decode()))
    return {}


@api.get("/handled")
async def list_handled() -> list[tuple[str, str]]:
    return handled


app = ASGIGuard(api, verifier=Verifier("github", secrets=[SECRET_A, SECRET_B]), paths=["/hooks/*"])
