"""Standard Webhooks: ``webhook-signature: v1,<base64> ...`` over ``"<id>.<ts>." + body``, with
``webhook-id`` and ``webhook-timestamp``; the key is the base64 after ``whsec_``.

Source: the Standard Webhooks specification. The id is signed, so it is a trustworthy nonce.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping

from hmacguard.errors import ConfigurationError, SignatureMalformed, SignatureMissing
from hmacguard.schemes.base import (
    MAX_SIGNATURES,
    Scheme,
    Secret,
    SignatureClaim,
    header_value,
    lowered,
    parse_timestamp,
    unb64,
)

__all__ = ["StandardWebhooksScheme"]


class StandardWebhooksScheme(Scheme):
    name = "standard-webhooks"
    timestamped = True
    has_message_id = True
    signs_message_id = True

    def key(self, secret: Secret) -> bytes:
        if isinstance(secret, bytes):
            return super().key(secret)
        text = secret.removeprefix("whsec_")
        # Providers hand out secrets with the base64 padding stripped (the reference library
        # re-pads them); restore it so the same secret works here.
        text += "=" * (-len(text) % 4)
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                "standard-webhooks: the secret must be base64 (optionally whsec_-prefixed)"
            ) from None
        return super().key(key)

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        if timestamp is None or message_id is None:
            raise ConfigurationError("standard-webhooks signs an id and a timestamp")
        return f"{message_id}.{timestamp}.".encode()

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        h = lowered(headers)
        value = header_value(h, "webhook-signature")
        try:
            msg_id = header_value(h, "webhook-id")
            ts_text = header_value(h, "webhook-timestamp")
        except SignatureMissing as exc:
            raise SignatureMalformed(str(exc)) from None
        if not msg_id.isprintable() or "." in msg_id or len(msg_id) > 256:
            raise SignatureMalformed("webhook-id is not a valid message id")
        ts = parse_timestamp(ts_text, "webhook-timestamp")
        sigs: list[bytes] = []
        for item in value.split():
            version, sep, b64 = item.partition(",")
            if not sep:
                raise SignatureMalformed("webhook-signature items must look like v1,<base64>")
            if version == "v1":
                sigs.append(unb64(b64, self.digest_size, "webhook-signature"))
            # Asymmetric (v1a) signatures are not HMAC; skip them as the spec allows.
        if not sigs:
            raise SignatureMalformed("webhook-signature has no v1 signature")
        if len(sigs) > MAX_SIGNATURES:
            raise SignatureMalformed("webhook-signature lists too many signatures")
        prefix = self.signed_prefix(timestamp=ts, message_id=msg_id)
        return SignatureClaim(self.algorithm, tuple(sigs), prefix, ts, msg_id)

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        sig = base64.b64encode(digests["sha256"]).decode("ascii")
        return {
            "webhook-id": str(message_id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": f"v1,{sig}",
        }

    respellable = True

    def respelled(self, headers: Mapping[str, str]) -> dict[str, str] | None:
        # An asymmetric (v1a) entry after the v1: HMAC verifiers skip every version but v1.
        out = dict(headers)
        out["webhook-signature"] = f"{out['webhook-signature']} v1a,{base64.b64encode(bytes(64)).decode()}"
        return out

    def new_message_id(self) -> str:
        return "msg_" + uuid.uuid4().hex
