"""One receiver for two providers: a guard per provider, stacked, each protecting its own paths.

``application`` (WSGI, gunicorn) and ``asgi`` (uvicorn): GitHub deliveries on ``/hooks/github``,
Stripe's on ``/hooks/stripe``, both guards' decisions in one Prometheus registry (each guard builds
its own ``PrometheusMetrics``; they share the metrics), served on ``/metrics``. The receiver behind
the guards answers every path -- as a router that routes any spelling would -- with the path and
the scheme that verified it (``none`` if no guard did), so a request that reaches it unverified on a
provider's path shows as a bypass.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app

from hmacguard import ASGIGuard, PrometheusMetrics, Verifier, WSGIGuard

GITHUB_SECRET = "providers-github-secret"
STRIPE_SECRET = "whsec_providers-stripe-secret"
registry = CollectorRegistry()


def _answer(path: str, verified: Any) -> bytes:
    return f"{path} {verified.scheme if verified is not None else 'none'}".encode()


def _receiver(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    answer = _answer(environ.get("PATH_INFO", ""), environ.get("hmacguard.verified"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


async def _asgi_receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    answer = _answer(scope["path"], scope.get("hmacguard.verified"))
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _stack(guard: Any, receiver: Any) -> Any:
    """``receiver`` behind the Stripe guard, behind the GitHub guard (the order does not matter)."""
    inner = guard(
        receiver,
        verifier=Verifier("stripe", secrets=STRIPE_SECRET),
        paths=["/hooks/stripe"],
        on_decision=PrometheusMetrics(registry=registry),
    )
    return guard(
        inner,
        verifier=Verifier("github", secrets=GITHUB_SECRET),
        paths=["/hooks/github"],
        on_decision=PrometheusMetrics(registry=registry),
    )


_wsgi = _stack(WSGIGuard, _receiver)
_asgi = _stack(ASGIGuard, _asgi_receiver)
_metrics_wsgi = make_wsgi_app(registry)
_metrics_asgi = make_asgi_app(registry)


def application(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/metrics":
        return _metrics_wsgi(environ, start_response)
    return _wsgi(environ, start_response)


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/metrics":
        await _metrics_asgi(scope, receive, send)
    else:
        await _asgi(scope, receive, send)
