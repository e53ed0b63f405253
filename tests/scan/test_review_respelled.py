"""Review of 55d1148 + d6e8965: the respelled replay (Scheme.respelled, probe replay-respelled).

Promises attacked: the respelled header is one every correct receiver of the scheme accepts (checked
against stripe's and standardwebhooks' own verifiers, beyond the single-signature case); a receiver
that remembers the header's text is reported replay-accepted (Standard Webhooks too, not only
Stripe), one that remembers the delivery is not (no false positive); and the finding's words say
what the answers show.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import standardwebhooks
import stripe

from hmacguard import Verifier, WSGIGuard
from hmacguard.scan import Budget, PhaseSelection, ProbeKind, ScanReport, ScanTarget, run_scan
from hmacguard.schemes import get_scheme, sign_body
from tests.scan import _wsgi

ONLY = PhaseSelection.of(["enforcement"])
QUICK = Budget(seconds=30, request_timeout=2.0)
SW_SECRET = "whsec_" + base64.b64encode(b"review2-standard-webhooks-secret").decode()
BODY = b'{"id":"evt_review2","type":"invoice.paid"}'


def _answers(report: ScanReport) -> list[tuple[str, int | None]]:
    assert report.enforcement is not None
    probes = report.enforcement.of(ProbeKind.SIGNED, ProbeKind.REPLAY, ProbeKind.REPLAY_RESPELLED)
    return [(p.kind.value, p.exchange.status) for p in probes]


def _replay_finding(report: ScanReport) -> Any:
    return next((f for f in report.findings if f.rule == "replay-accepted"), None)


# -- the respelled header against the providers' own verifiers ----------------------------------------


def _stripe_header(timestamp: int, *secrets: str, extra: str = "") -> str:
    sigs = [
        "v1=" + hmac.new(s.encode(), b"%d." % timestamp + BODY, hashlib.sha256).hexdigest() for s in secrets
    ]
    return ",".join([f"t={timestamp}", *sigs]) + extra


#: Headers built when the test runs (signed now: collected minutes earlier, they would be stale).
STRIPE_HEADERS = {
    "one-v1": lambda now: _stripe_header(now, "whsec_new"),
    "two-v1": lambda now: _stripe_header(now, "whsec_old", "whsec_new"),  # mid-roll: a v1 per secret
    "already-v0": lambda now: _stripe_header(now, "whsec_new", extra=",v0=" + "1" * 64),  # test mode's v0
}


@pytest.mark.parametrize("spelling", sorted(STRIPE_HEADERS))
def test_stripes_library_accepts_every_respelled_stripe_header(spelling: str) -> None:
    header = STRIPE_HEADERS[spelling](int(time.time()))
    respelled = get_scheme("stripe").respelled({"Stripe-Signature": header})
    assert respelled is not None and respelled["Stripe-Signature"] != header
    stripe.WebhookSignature.verify_header(BODY.decode(), respelled["Stripe-Signature"], "whsec_new", 300)
    # and our own guard takes it as the same delivery as the original
    verifier = Verifier("stripe", secrets="whsec_new")
    verifier.verify({"Stripe-Signature": header}, BODY).close()
    with pytest.raises(Exception, match="already"):
        verifier.verify(respelled, BODY)


@pytest.mark.parametrize("signatures", [1, 2])
def test_standardwebhooks_library_accepts_every_respelled_header(signatures: int) -> None:
    headers = sign_body("standard-webhooks", SW_SECRET, BODY)
    if signatures == 2:  # a sender mid-rotation: a v1 per secret, space separated
        other = sign_body(
            "standard-webhooks",
            "whsec_" + base64.b64encode(b"other").decode(),
            BODY,
            timestamp=int(headers["webhook-timestamp"]),
            message_id=headers["webhook-id"],
        )
        headers["webhook-signature"] = f"{other['webhook-signature']} {headers['webhook-signature']}"
    respelled = get_scheme("standard-webhooks").respelled(headers)
    assert respelled is not None and respelled["webhook-signature"] != headers["webhook-signature"]
    standardwebhooks.Webhook(SW_SECRET).verify(BODY, respelled)


# -- Standard Webhooks receivers, end to end ------------------------------------------------------------


def _standard_webhooks_receiver(key_of: str) -> Callable[..., Iterable[bytes]]:
    """A receiver verifying with the standardwebhooks library, refusing (409) a delivery it saw,
    remembering it by the ``signature`` header's text or by the signed ``id``."""
    seen: set[str] = set()
    hook = standardwebhooks.Webhook(SW_SECRET)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = _wsgi._body(environ)
        headers = {
            "webhook-id": environ.get("HTTP_WEBHOOK_ID", ""),
            "webhook-timestamp": environ.get("HTTP_WEBHOOK_TIMESTAMP", ""),
            "webhook-signature": environ.get("HTTP_WEBHOOK_SIGNATURE", ""),
        }
        try:
            hook.verify(body, headers)
        except Exception:
            return _wsgi._answer(start_response, "401 Unauthorized", b"bad signature")
        key = headers["webhook-signature"] if key_of == "signature" else headers["webhook-id"]
        if key in seen:
            return _wsgi._answer(start_response, "409 Conflict", b"already processed")
        seen.add(key)
        return _wsgi._answer(start_response, "200 OK", json.dumps({"ok": True}).encode())

    return app


@pytest.mark.parametrize(("key_of", "found"), [("signature", True), ("id", False)])
def test_a_standard_webhooks_receiver_remembering_the_header_text_is_found(key_of: str, found: bool) -> None:
    with _wsgi.serve(_standard_webhooks_receiver(key_of)) as url:
        report = run_scan(
            ScanTarget(url, scheme="standard-webhooks", secret=SW_SECRET), QUICK, selection=ONLY
        )
    assert _answers(report) == [("signed", 200), ("replay", 409), ("replay-respelled", 200 if found else 409)]
    assert (_replay_finding(report) is not None) is found


# -- what the finding says ----------------------------------------------------------------------------


def _two_workers_of_the_guard() -> Callable[..., Iterable[bytes]]:
    """hmacguard's own guard on Stripe with its default (per-process) memory store, in two worker
    processes behind a balancer. The balancer's choice is fixed here to one a random balancer makes
    one time in four with two workers: the first signed delivery and its identical replay reach the
    first worker, the respelled replay the second."""
    accepted = WSGIGuard(
        lambda environ, start_response: _wsgi._answer(
            start_response, "200 OK", _wsgi._body(environ) and b"{}"
        ),
        verifier=Verifier("stripe", secrets=_wsgi.SECRET),
        paths=["/webhook"],
    )
    second = WSGIGuard(
        lambda environ, start_response: _wsgi._answer(
            start_response, "200 OK", _wsgi._body(environ) and b"{}"
        ),
        verifier=Verifier("stripe", secrets=_wsgi.SECRET),
        paths=["/webhook"],
    )
    deliveries: list[str] = []  # each request's t and first v1: which delivery it is

    def balancer(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        header = environ.get("HTTP_STRIPE_SIGNATURE", "")
        delivery = ",".join(header.split(",")[:2])
        deliveries.append(delivery)
        # The third request of one delivery (the respelled replay) goes to the other worker.
        worker = second if deliveries.count(delivery) == 3 else accepted
        return worker(environ, start_response)

    return balancer


def test_the_respelled_finding_does_not_blame_the_key_when_the_memory_is_per_worker() -> None:
    """When the identical replay is refused and the respelled one accepted, replay-accepted stated as
    fact that the receiver 'remembers the header's text, not the delivery'. The same answers come
    from a receiver that keys by the delivery but remembers it per worker (hmacguard's own default
    MemoryReplayStore under several workers), whose fix is a shared store, not another key. The
    finding was right, its diagnosis too sure (failed on a58729a; it now names both)."""
    with _wsgi.serve(_two_workers_of_the_guard()) as url:
        report = run_scan(ScanTarget(url, scheme="stripe", secret=_wsgi.SECRET), QUICK, selection=ONLY)
    assert _answers(report) == [("signed", 200), ("replay", 409), ("replay-respelled", 200)]
    finding = _replay_finding(report)
    assert finding is not None
    assert "worker" in finding.message or "shared" in finding.message
