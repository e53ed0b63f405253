"""One receiver, two providers: stacked guards under real servers (gunicorn and uvicorn).

GitHub on ``/hooks/github`` and Stripe on ``/hooks/stripe`` (``_apps/providers_guarded.py``). Each
provider's deliveries pass on their own path only; one provider's signature on the other's path, an
unsigned request, and the other spellings of either path a router could route are refused by the
right guard; replays are refused per provider; both guards report into one set of Prometheus
metrics, told apart by the ``scheme`` label, with exactly the counts sent.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from hmacguard import Signer

from ._apps.providers_guarded import GITHUB_SECRET, STRIPE_SECRET
from ._servers import Server, gunicorn, raw_response, uvicorn

pytestmark = pytest.mark.slow
APP = "tests.guard._apps.providers_guarded"
SIGNERS = {
    "github": Signer("github", secrets=GITHUB_SECRET),
    "stripe": Signer("stripe", secrets=STRIPE_SECRET),
}
counter = itertools.count()

# Other spellings of a provider's path that routers route to its view (sent raw: HTTP clients
# normalise some of them away). Each, unsigned, must be refused by that provider's guard.
SPELLINGS = [
    "/hooks/{p}/",
    "//hooks/{p}",
    "/hooks//{p}",
    "/hooks/./{p}",
    "/hooks/x/../{p}",
    "/HOOKS/{P}",
    "/hooks/%{hex}{rest}",
]


def _spell(template: str, provider: str) -> str:
    return template.format(p=provider, P=provider.upper(), hex=f"{ord(provider[0]):02x}", rest=provider[1:])


def _delivery(provider: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"provider": "%s", "n": %d}' % (provider.encode(), next(counter))
    return body, SIGNERS[provider].sign(body)


def _post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, bytes]:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    status, _, answer = raw_response(server.port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return status, answer


@contextlib.contextmanager
def _serve(kind: str) -> Iterator[Server]:
    if kind == "gunicorn":
        with gunicorn(f"{APP}:application", {}, workers=1) as server:
            yield server
    else:
        with uvicorn(f"{APP}:asgi") as server:
            yield server


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_each_provider_passes_on_its_own_path_only(kind: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    sent: Counter[tuple[str, str]] = Counter()  # (scheme, outcome) the guards must report
    with _serve(kind) as server:
        for provider, other in (("github", "stripe"), ("stripe", "github")):
            body, headers = _delivery(provider)
            assert _post(server, f"/hooks/{provider}", body, headers) == (
                200,
                f"/hooks/{provider} {provider}".encode(),
            )
            sent[provider, "accepted"] += 1
            status, answer = _post(server, f"/hooks/{provider}", body, headers)
            assert status == 409, answer  # its replay
            sent[provider, "replay"] += 1
            # Its signature on the other provider's path: the other's guard finds no signature of its own.
            fresh, headers = _delivery(provider)
            status, answer = _post(server, f"/hooks/{other}", fresh, headers)
            assert status == 400 and b"signature-missing" in answer, answer
            sent[other, "signature-missing"] += 1
            for template in SPELLINGS:
                path = _spell(template, provider)
                status, answer = _post(server, path, b"{}", {})
                assert status is not None and 400 <= status < 500, (path, status, answer)
                assert b" none" not in answer, (path, answer)  # never reached the receiver unverified
                sent[provider, "signature-missing"] += 1
        # What no guard protects reaches the receiver untouched.
        assert _post(server, "/health", b"", {}) == (200, b"/health none")
        metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
    samples = next(f for f in text_string_to_metric_families(metrics) if f.name == "hmacguard_decisions")
    reported = Counter(
        {
            (s.labels["scheme"], s.labels["outcome"]): int(s.value)
            for s in samples.samples
            if s.name.endswith("_total")
        }
    )
    assert reported == sent
