"""The FastAPI dependency behind the middleware takes the middleware's verification only when it
vouches for it (``Guard.vouched``: the same Verifier object): a delivery that a middleware verified
for one provider or tenant must not reach a route whose dependency names another's verifier.

The attack: one ``ASGIGuard`` over ``/hooks/*`` with tenant A's secret, and a route ``/hooks/b``
whose dependency verifies tenant B's. Before, the dependency handed over whatever the middleware had
verified, so anyone holding A's secret (tenant A) could deliver events to B's handler.
"""

# No ``from __future__ import annotations``: FastAPI resolves the endpoint's annotations at run time.
import io
from typing import Annotated

from fastapi import Depends, FastAPI

from hmacguard import ASGIGuard, MemoryReplayStore, VerifiedBody, Verifier
from hmacguard.guard.policy import Guard
from hmacguard.integrations.fastapi import VerifiedBodyDependency, install
from hmacguard.schemes import sign_body

from .._inprocess import asgi_request

A, A_OLD, B = "tenant-a-secret", "tenant-a-previous-secret", "tenant-b-secret"


def _receiver(middleware: Verifier, dependency: Verifier) -> tuple[ASGIGuard, list[bytes]]:
    """``/hooks/route`` behind the middleware (``middleware``'s secrets), its dependency ``dependency``."""
    handled: list[bytes] = []
    app = FastAPI()
    install(app)
    verified = VerifiedBodyDependency(verifier=dependency)

    @app.post("/hooks/route")
    async def route(body: Annotated[VerifiedBody, Depends(verified)]) -> dict[str, int]:
        handled.append(body.getvalue())
        return {"key_index": body.key_index}

    return ASGIGuard(app, verifier=middleware, paths=["/hooks/*"]), handled


def _send(app: ASGIGuard, secret: str, n: int) -> int:
    body = b'{"n": %d}' % n
    return asgi_request(app, body, sign_body("github", secret, body), path="/hooks/route").status


def test_a_body_verified_for_another_tenant_is_verified_again_and_refused() -> None:
    app, handled = _receiver(Verifier("github", secrets=A), Verifier("github", secrets=B))
    assert _send(app, A, 1) == 401  # passed A's middleware, refused by B's dependency
    assert handled == []


def test_the_same_verifier_is_trusted_and_its_replays_refused() -> None:
    verifier = Verifier("github", secrets=A)
    app, handled = _receiver(verifier, verifier)
    assert _send(app, A, 2) == 200
    assert _send(app, A, 2) == 409
    assert handled == [b'{"n": 2}']


def test_an_equal_verifier_sharing_the_replay_store_is_vouched_for_not_asked_twice() -> None:
    """Two Verifier objects with the same scheme and secret (built separately, from one setting) and
    one replay store: verifying again would hold the delivery twice and answer 409."""
    store = MemoryReplayStore()
    app, handled = _receiver(
        Verifier("github", secrets=A, replay=store), Verifier("github", secrets=A, replay=store)
    )
    assert _send(app, A, 3) == 200
    assert handled == [b'{"n": 3}']


def test_a_secret_the_dependency_no_longer_accepts_is_refused() -> None:
    """The middleware still accepts A's previous secret; the route's dependency has dropped it."""
    app, handled = _receiver(Verifier("github", secrets=[A, A_OLD]), Verifier("github", secrets=A))
    assert _send(app, A_OLD, 4) == 401
    assert _send(app, A, 5) == 200
    assert handled == [b'{"n": 5}']


def test_only_the_very_verifier_that_verified_is_vouched_for() -> None:
    """Identity, not equality: an equal verifier built twice, another scheme with the same secret or
    a rotation list holding it all verify again (Guard.vouched)."""
    github = Verifier("github", secrets=A, replay=None)
    body = VerifiedBody(io.BytesIO(b"{}"), "github", 0, None, None)
    assert Guard(github).vouched(body, Guard(github)) is body
    for other in (
        Verifier("github", secrets=A, replay=None),
        Verifier("generic", secrets=A, replay=None),
        Verifier("github", secrets=[B, A], replay=None),
    ):
        assert Guard(other).vouched(body, Guard(github)) is None
    assert Guard(github).vouched(b"not a body", Guard(github)) is None
    assert Guard(github).vouched(body, github) is None  # a Verifier where a Guard belongs
