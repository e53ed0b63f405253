"""Apps for tests/guard/test_rotation_replay.py (real gunicorn and uvicorn): Stripe's scheme in the
middle of a secret roll -- the new secret first, the old one still accepted -- with the default
per-process replay store, in front of an app that counts the deliveries it processed.
"""

from __future__ import annotations

from typing import Any

from hmacguard import ASGIGuard, Verifier, WSGIGuard

NEW_SECRET = "whsec_rotation-new"
OLD_SECRET = "whsec_rotation-old"
PROCESSED: list[int] = []


def _verifier() -> Verifier:
    return Verifier("stripe", secrets=[NEW_SECRET, OLD_SECRET], body_timeout=2.0)


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    PROCESSED.append(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"processed %d" % len(PROCESSED)]


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    PROCESSED.append(1)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"processed %d" % len(PROCESSED)})


wsgi = WSGIGuard(_wsgi_app, verifier=_verifier(), paths=["/webhook"])
asgi = ASGIGuard(_asgi_app, verifier=_verifier(), paths=["/webhook"])


def _github_rolling() -> WSGIGuard:
    """GitHub's scheme with the secrets in ``HMACGUARD_TEST_SECRETS`` (comma-separated, current
    first) on the Redis at ``HMACGUARD_TEST_REDIS``: one side of a rolling deploy of a rotation."""
    import os

    from hmacguard import RedisReplayStore

    secrets = os.environ.get("HMACGUARD_TEST_SECRETS", OLD_SECRET).split(",")
    replay = RedisReplayStore(os.environ.get("HMACGUARD_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    return WSGIGuard(
        _wsgi_app, verifier=Verifier("github", secrets=secrets, replay=replay), paths=["/webhook"]
    )


def __getattr__(name: str) -> Any:
    # Built on first use: importing the module for its secrets must not connect anywhere.
    if name == "github_rolling":
        return _github_rolling()
    raise AttributeError(name)
