"""Probes with --secret are correctly signed, as checked by the providers' own verifier packages and
by real receivers; without it they carry well-formed but wrong signatures, with every header the
provider sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import slack_sdk.signature
import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hmacguard.lab import run_target
from hmacguard.scan import Budget, ScanTarget, Variant, run_scan
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.probes.base import Prober
from hmacguard.scan.runner import endpoint_for
from hmacguard.scan.wire import Framing

SW_SECRET = "whsec_" + base64.b64encode(b"hmacguard-standard-webhooks-k").decode()


def built(
    target: ScanTarget, variant: Variant | None = None, size: int = 3000
) -> tuple[dict[str, str], bytes]:
    prober = Prober(target, Budget(), endpoint_for(target), "/webhook")
    request = prober.request(variant or prober.primary, size)
    assert request.body is not None
    body = b"".join(bytes(c) for c in request.body())
    assert len(body) == request.body_length
    return dict(request.headers), body


def test_stripe_probe_verifies_with_stripe() -> None:
    headers, body = built(ScanTarget("http://127.0.0.1:1/webhook", scheme="stripe", secret="whsec_test"))
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_test")
    assert event is not None
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", headers["Stripe-Signature"], "whsec_test")


def test_standard_webhooks_probe_verifies_with_standardwebhooks() -> None:
    headers, body = built(
        ScanTarget("http://127.0.0.1:1/webhook", scheme="standard-webhooks", secret=SW_SECRET)
    )
    Webhook(SW_SECRET).verify(body, headers)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    with pytest.raises(WebhookVerificationError):
        Webhook(SW_SECRET).verify(body[:-1] + b"}", {**headers, "webhook-id": "msg_other"})


def test_slack_probe_verifies_with_slack_sdk() -> None:
    target = ScanTarget("http://127.0.0.1:1/webhook", scheme="slack", secret="slack-signing-secret")
    headers, body = built(target, Variant(Framing.CONTENT_LENGTH, "application/x-www-form-urlencoded"))
    verifier = slack_sdk.signature.SignatureVerifier("slack-signing-secret")
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_github_probe_carries_every_header_github_sends() -> None:
    headers, body = built(ScanTarget("http://127.0.0.1:1/webhook", secret="It's a Secret to Everybody"))
    key = b"It's a Secret to Everybody"
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    assert headers["X-GitHub-Event"] and headers["X-GitHub-Delivery"]
    assert headers["Content-Type"] == "application/json"


def test_generic_probe_uses_its_header_prefix_encoding_and_hash() -> None:
    target = ScanTarget(
        "http://127.0.0.1:1/webhook", scheme="generic", secret="s3", generic_header="X-Sig",
        generic_prefix="v=", generic_encoding="base64", generic_algorithm="sha512",
    )  # fmt: skip
    headers, body = built(target, size=70_000)
    digest = base64.b64encode(hmac.new(b"s3", body, hashlib.sha512).digest()).decode()
    assert headers["X-Sig"] == "v=" + digest
    assert headers["Content-Type"] == "application/octet-stream"


def test_forged_probe_is_well_formed_but_wrong() -> None:
    headers, body = built(ScanTarget("http://127.0.0.1:1/webhook"))
    value = headers["X-Hub-Signature-256"]
    assert value.startswith("sha256=") and len(value) == 7 + 64
    assert value != "sha256=" + hmac.new(b"anything", body, hashlib.sha256).hexdigest()


def test_repeated_probes_are_distinct_deliveries() -> None:
    target = ScanTarget("http://127.0.0.1:1/webhook", secret="k")
    (h1, b1), (h2, b2) = built(target), built(target)
    assert b1 != b2 and len(b1) == len(b2)  # unique bodies: replay stores keyed on digests pass them
    assert h1["X-GitHub-Delivery"] != h2["X-GitHub-Delivery"]


@pytest.mark.slow
def test_signed_scan_reaches_the_code_after_verification() -> None:
    """Against the real receivers: flask-get-data answers 200 (not 401) to signed probes in every
    framing, large ones included; the guard answers 200 below its cap and never sees a replay."""
    budget = Budget(bytes=128 * MiB, ladder=(KiB, MiB, 8 * MiB), max_size=8 * MiB, burst_requests=4,
                    burst_concurrency=2, request_timeout=3)  # fmt: skip
    with run_target("flask-get-data") as t:
        report = run_scan(ScanTarget(t.url, secret=t.secret), budget)
    statuses = {(m.variant.label, m.exchange.status) for m in report.measurements if m.phase != "gzip"}
    assert {s for _, s in statuses} == {200}, statuses
    assert ("chunked json", 200) in statuses and report.signed
    with run_target("flask-guarded") as t:
        report = run_scan(ScanTarget(t.url, secret=t.secret), budget)
    by_status = {m.exchange.status for m in report.measurements}
    assert 200 in by_status and 413 in by_status
    assert not by_status & {401, 409}, by_status
