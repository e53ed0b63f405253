"""Signature schemes, one module per provider: how each signs a body; shared by the guard (verify)
and the scanner (sign).

Every scheme is streaming: the HMAC is fed a scheme-specific prefix (timestamp, message id), then the
body chunk by chunk, so neither side ever needs the whole body in memory.

Scheme       header(s)                                        signed bytes                 key
-----------  -----------------------------------------------  ---------------------------  -------------------
github       X-Hub-Signature-256: sha256=<hex>                body                         secret (UTF-8)
             (+ legacy X-Hub-Signature: sha1=<hex> when signing)
stripe       Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]       "<ts>." + body               secret (UTF-8, all)
slack        X-Slack-Signature: v0=<hex>,                     "v0:<ts>:" + body            secret (UTF-8)
             X-Slack-Request-Timestamp: <ts>
standard-    webhook-signature: v1,<b64> [v1,<b64> ...],      "<id>.<ts>." + body          base64 after whsec_
webhooks     webhook-id, webhook-timestamp
generic      configurable header, prefix, hex|base64,         body                         secret (UTF-8)
             sha256|sha512

Sources: GitHub's "Validating webhook deliveries", Stripe's "Verify webhook signatures manually",
Slack's "Verifying requests from Slack", and the Standard Webhooks specification. The signing side is
proven against those providers' own verifier packages in tests/guard/test_schemes_interop.py.
"""

from __future__ import annotations

from hmacguard.http import LowerCaseHeaders
from hmacguard.schemes.base import Scheme, Secret, SignatureClaim, secret_list
from hmacguard.schemes.generic import GenericScheme
from hmacguard.schemes.github import GitHubScheme
from hmacguard.schemes.registry import SCHEME_NAMES, get_scheme
from hmacguard.schemes.signing import StreamingSigner, forged_headers, sign_body
from hmacguard.schemes.slack import SlackScheme
from hmacguard.schemes.standard_webhooks import StandardWebhooksScheme
from hmacguard.schemes.stripe import StripeScheme

__all__ = [
    "SCHEME_NAMES",
    "GenericScheme",
    "GitHubScheme",
    "LowerCaseHeaders",
    "Scheme",
    "Secret",
    "SignatureClaim",
    "SlackScheme",
    "StandardWebhooksScheme",
    "StreamingSigner",
    "StripeScheme",
    "forged_headers",
    "get_scheme",
    "secret_list",
    "sign_body",
]
