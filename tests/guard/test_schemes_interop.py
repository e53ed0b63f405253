"""Our schemes, Signer and Verifier against the providers' own packages, both ways.

Signing: headers from ``sign_body`` / ``StreamingSigner`` must pass stripe's, standardwebhooks' and
slack_sdk's real verifiers, and GitHub's documented example must come out byte for byte.
Verifying: headers those packages produce must parse with our schemes and check out with an HMAC
over ``claim.prefix + body``. Tampering must fail on both sides, so none of this passes vacuously.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Mapping
from datetime import datetime, timezone

import pytest
import slack_sdk.signature
import standardwebhooks
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from hmacguard import Signer, Verifier
from hmacguard.errors import (
    ConfigurationError,
    SignatureMalformed,
    SignatureMismatch,
    TimestampInvalid,
)
from hmacguard.schemes import StreamingSigner, get_scheme, sign_body

STRIPE_SECRET = "whsec_test_interop_secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# 24 random-looking bytes, base64 with the whsec_ prefix, as Svix and the spec hand them out.
SW_SECRET = "whsec_" + base64.b64encode(bytes(range(7, 31))).decode("ascii")

# Bodies the providers' libraries can take: they decode the payload as UTF-8 text first.
json_like = st.text(max_size=300).map(lambda s: f'{{"text": {s!r}}}'.encode())


def chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    """``body`` split at the given offsets (so a streaming signer sees arbitrary boundaries)."""
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(body)]:
        pieces.append(body[last:p])
        last = p
    return pieces


def our_verify(scheme_name: str, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Parse the claim with our scheme and check it as a verifier must: any listed signature."""
    scheme = get_scheme(scheme_name)
    claim = scheme.parse(headers)
    mac = hmac.new(scheme.key(secret), claim.prefix, claim.algorithm)
    mac.update(body)
    digest = mac.digest()
    return any(hmac.compare_digest(digest, sig) for sig in claim.signatures)


# --- GitHub -----------------------------------------------------------------------------------


def test_github_documented_example() -> None:
    # From GitHub's "Validating webhook deliveries" page.
    headers = sign_body("github", "It's a Secret to Everybody", b"Hello, World!")
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert headers["X-Hub-Signature-256"] == expected
    assert our_verify("github", "It's a Secret to Everybody", headers, b"Hello, World!")
    assert not our_verify("github", "It's a Secret to Everybody", headers, b"Hello, World?")


def test_github_example_streamed_in_pieces() -> None:
    signer = StreamingSigner("github", "It's a Secret to Everybody")
    for piece in (b"Hel", b"", b"lo, W", b"orld!"):
        signer.update(piece)
    assert signer.headers()["X-Hub-Signature-256"].endswith("c22c46f4379c8b043e17")


# --- Stripe -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(body=json_like, cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_stripe_library_verifies_our_signature(body: bytes, cuts: list[int]) -> None:
    headers = sign_body("stripe", STRIPE_SECRET, chunked(body, cuts))
    header = headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, STRIPE_SECRET, tolerance=300)


def test_stripe_construct_event_accepts_our_signature() -> None:
    body = b'{"id": "evt_1", "object": "event", "type": "charge.succeeded", "data": {"object": {}}}'
    headers = sign_body("stripe", STRIPE_SECRET, body)
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_SECRET)
    assert event["id"] == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_SECRET + "x")


@settings(max_examples=40, deadline=None)
@given(body=json_like)
def test_stripe_library_signature_verifies_with_ours(body: bytes) -> None:
    header = stripe.WebhookSignature.generate_signature_header(body.decode("utf-8"), STRIPE_SECRET)
    assert our_verify("stripe", STRIPE_SECRET, {"Stripe-Signature": header}, body)
    assert not our_verify("stripe", STRIPE_SECRET + "x", {"Stripe-Signature": header}, body)


def test_stripe_rotation_header_with_several_v1_and_a_v0() -> None:
    # During a secret roll Stripe lists one v1 per active secret; v0 (test mode) is ignored.
    body = b'{"id": "evt_2"}'
    ts = int(time.time())
    old = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_old", ts)
    new = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_new", ts)
    header = f"t={ts},v1={old.split('v1=')[1]},v1={new.split('v1=')[1]},v0=deadbeef"
    assert stripe.WebhookSignature.verify_header(body, header, "whsec_new")
    assert our_verify("stripe", "whsec_new", {"stripe-signature": header}, body)
    assert our_verify("stripe", "whsec_old", {"stripe-signature": header}, body)
    assert not our_verify("stripe", "whsec_other", {"stripe-signature": header}, body)


def test_stripe_timestamp_is_part_of_the_signature() -> None:
    body = b"{}"
    headers = sign_body("stripe", STRIPE_SECRET, body, timestamp=1_700_000_000)
    moved = headers["Stripe-Signature"].replace("t=1700000000", "t=1700000001")
    assert our_verify("stripe", STRIPE_SECRET, headers, body)
    assert not our_verify("stripe", STRIPE_SECRET, {"Stripe-Signature": moved}, body)


# --- Standard Webhooks ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(body=json_like, cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_standardwebhooks_library_verifies_our_signature(body: bytes, cuts: list[int]) -> None:
    headers = sign_body("standard-webhooks", SW_SECRET, chunked(body, cuts))
    wh = standardwebhooks.Webhook(SW_SECRET)
    assert wh.verify(body, headers, json_parse=False) is None  # returns None on success
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        wh.verify(body + b" ", headers, json_parse=False)


@settings(max_examples=40, deadline=None)
@given(body=json_like)
def test_standardwebhooks_library_signature_verifies_with_ours(body: bytes) -> None:
    wh = standardwebhooks.Webhook(SW_SECRET)
    now = datetime.now(tz=timezone.utc)
    headers = {
        "webhook-id": "msg_2Lh9KRb0pzN4LePd3XiA4xPvcU7",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": wh.sign("msg_2Lh9KRb0pzN4LePd3XiA4xPvcU7", now, body.decode("utf-8")),
    }
    assert our_verify("standard-webhooks", SW_SECRET, headers, body)
    assert not our_verify("standard-webhooks", SW_SECRET, headers, body + b"\n")


def test_standardwebhooks_several_signatures_any_one_matches() -> None:
    body = b'{"type": "user.created"}'
    now = datetime.now(tz=timezone.utc)
    mine = standardwebhooks.Webhook(SW_SECRET).sign("msg_1", now, body.decode())
    other = standardwebhooks.Webhook(base64.b64encode(b"o" * 24).decode()).sign("msg_1", now, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": f"{other} v1a,c29tZXRoaW5nIGVsc2U= {mine}",
    }
    assert our_verify("standard-webhooks", SW_SECRET, headers, body)


def test_standardwebhooks_unpadded_secret_is_accepted_like_the_reference() -> None:
    # The reference library re-pads secrets that come without "=" padding; we must take them too
    # (schemes.py refused them before this test existed).
    raw = b"k" * 25  # 25 bytes -> base64 with "==" padding, which we strip
    unpadded = "whsec_" + base64.b64encode(raw).decode("ascii").rstrip("=")
    body = b'{"ok": true}'
    headers = sign_body("standard-webhooks", unpadded, body)
    standardwebhooks.Webhook(unpadded).verify(body, headers, json_parse=False)
    assert get_scheme("standard-webhooks").key(unpadded) == raw


def test_standardwebhooks_garbage_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        get_scheme("standard-webhooks").key("whsec_not*base64")


# --- Slack ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(body=json_like, cuts=st.lists(st.integers(min_value=0), max_size=5))
def test_slack_sdk_verifies_our_signature(body: bytes, cuts: list[int]) -> None:
    headers = sign_body("slack", SLACK_SECRET, chunked(body, cuts))
    verifier = slack_sdk.signature.SignatureVerifier(SLACK_SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)


@settings(max_examples=40, deadline=None)
@given(body=json_like)
def test_slack_sdk_signature_verifies_with_ours(body: bytes) -> None:
    ts = str(int(time.time()))
    sig = slack_sdk.signature.SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=ts, body=body)
    assert sig is not None
    headers = {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts}
    assert our_verify("slack", SLACK_SECRET, headers, body)
    assert not our_verify("slack", "another-signing-secret", headers, body)


def test_slack_header_without_version_prefix_is_malformed() -> None:
    ts = str(int(time.time()))
    sig = slack_sdk.signature.SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=ts, body=b"{}")
    assert sig is not None
    with pytest.raises(SignatureMalformed):
        get_scheme("slack").parse(
            {"X-Slack-Signature": sig.removeprefix("v0="), "X-Slack-Request-Timestamp": ts}
        )


# --- the core's Signer and Verifier against the same packages ---------------------------------


def test_signer_matches_githubs_documented_example() -> None:
    headers = Signer("github", secrets=["It's a Secret to Everybody"]).sign(b"Hello, World!")
    assert headers["X-Hub-Signature-256"] == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    verifier = Verifier("github", secrets=["It's a Secret to Everybody"], replay=None)
    with verifier.verify(headers, b"Hello, World!") as body:
        assert body.getvalue() == b"Hello, World!"


def test_signer_output_passes_every_provider_package() -> None:
    body = b'{"id": "evt_signer", "object": "event"}'
    stripe_headers = Signer("stripe", secrets=[STRIPE_SECRET, "whsec_next"]).sign(iter([body[:5], body[5:]]))
    assert stripe.WebhookSignature.verify_header(body, stripe_headers["Stripe-Signature"], STRIPE_SECRET)
    sw_headers = Signer("standard-webhooks", secrets=[SW_SECRET]).sign(body)
    standardwebhooks.Webhook(SW_SECRET).verify(body, sw_headers, json_parse=False)
    slack_headers = Signer("slack", secrets=[SLACK_SECRET]).sign(body)
    assert slack_sdk.signature.SignatureVerifier(SLACK_SECRET).is_valid_request(body, slack_headers)


def _verify_with_core(scheme: str, secrets: list[str], headers: Mapping[str, str], body: bytes) -> int:
    verifier = Verifier(scheme, secrets=secrets, replay=None)
    with verifier.verify(headers, iter([body[:3], body[3:]])) as verified:
        assert verified.getvalue() == body
        return verified.key_index


def test_provider_signatures_pass_the_core_verifier() -> None:
    body = b'{"type": "ping"}'
    ts = str(int(time.time()))
    stripe_header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
    assert _verify_with_core("stripe", [STRIPE_SECRET], {"Stripe-Signature": stripe_header}, body) == 0
    now = datetime.now(tz=timezone.utc)
    sw = {
        "webhook-id": "msg_core",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(SW_SECRET).sign("msg_core", now, body.decode()),
    }
    # Rotation: the provider still signs with the older secret, listed second.
    fresh = "whsec_" + base64.b64encode(b"n" * 24).decode()
    assert _verify_with_core("standard-webhooks", [fresh, SW_SECRET], sw, body) == 1
    slack_sig = slack_sdk.signature.SignatureVerifier(SLACK_SECRET).generate_signature(
        timestamp=ts, body=body
    )
    assert slack_sig is not None
    slack = {"X-Slack-Signature": slack_sig, "X-Slack-Request-Timestamp": ts}
    assert _verify_with_core("slack", [SLACK_SECRET], slack, body) == 0


def test_core_verifier_refuses_tampered_provider_signatures() -> None:
    body = b'{"type": "ping"}'
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
    with pytest.raises(SignatureMismatch):
        _verify_with_core("stripe", [STRIPE_SECRET], {"Stripe-Signature": header}, body + b" ")
    old = int(time.time()) - 3600
    stale = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET, old)
    with pytest.raises(TimestampInvalid):  # the stripe package would take it with tolerance=None
        _verify_with_core("stripe", [STRIPE_SECRET], {"Stripe-Signature": stale}, body)


# --- A second spelling of one delivery (the scanner's respelled replay) ----------------------------


def test_a_respelled_stripe_header_still_verifies_with_stripes_library_and_ours() -> None:
    body = b'{"id": "evt_respelled"}'
    headers = sign_body("stripe", STRIPE_SECRET, body)
    respelled = get_scheme("stripe").respelled(headers)
    assert respelled is not None and respelled["Stripe-Signature"] != headers["Stripe-Signature"]
    assert respelled["Stripe-Signature"].startswith(headers["Stripe-Signature"] + ",v0=")
    assert stripe.WebhookSignature.verify_header(
        body, respelled["Stripe-Signature"], STRIPE_SECRET, tolerance=300
    )
    assert our_verify("stripe", STRIPE_SECRET, respelled, body)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", respelled["Stripe-Signature"], STRIPE_SECRET)


def test_a_respelled_standard_webhooks_header_still_verifies_with_the_library_and_ours() -> None:
    body = b'{"type": "user.respelled"}'
    headers = sign_body("standard-webhooks", SW_SECRET, body)
    respelled = get_scheme("standard-webhooks").respelled(headers)
    assert respelled is not None and respelled["webhook-signature"] != headers["webhook-signature"]
    assert respelled["webhook-id"] == headers["webhook-id"]
    assert standardwebhooks.Webhook(SW_SECRET).verify(body, respelled, json_parse=False) is None
    assert our_verify("standard-webhooks", SW_SECRET, respelled, body)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SW_SECRET).verify(body + b" ", respelled, json_parse=False)


@pytest.mark.parametrize("scheme", ["github", "slack", "generic"])
def test_schemes_with_one_spelling_offer_none(scheme: str) -> None:
    assert get_scheme(scheme).respelled({"X": "y"}) is None
