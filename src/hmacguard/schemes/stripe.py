"""Stripe: ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]`` over ``"<ts>." + body``.

Source: Stripe's "Verify webhook signatures manually". Several ``v1`` entries appear while a secret
is being rolled; ``v0`` (test mode) entries are ignored, as Stripe's own libraries do.
"""

from __future__ import annotations

from collections.abc import Mapping

from hmacguard.errors import ConfigurationError, SignatureMalformed, TimestampInvalid
from hmacguard.schemes.base import (
    MAX_SIGNATURES,
    Scheme,
    SignatureClaim,
    header_value,
    lowered,
    parse_timestamp,
    unhex,
)

__all__ = ["StripeScheme"]


class StripeScheme(Scheme):
    name = "stripe"
    timestamped = True
    header = "Stripe-Signature"

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        if timestamp is None:
            raise ConfigurationError("stripe signs a timestamp; none given")
        return f"{timestamp}.".encode("ascii")

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        value = header_value(lowered(headers), self.header)
        ts: int | None = None
        sigs: list[bytes] = []
        for item in value.split(","):
            k, sep, v = item.strip().partition("=")
            if not sep:
                raise SignatureMalformed(f"{self.header} items must be key=value")
            if k == "t":
                ts = parse_timestamp(v, f"{self.header} t")
            elif k == "v1":
                sigs.append(unhex(v.strip(), self.digest_size, self.header))
            # Other schemes (v0 = test mode) are ignored, as Stripe's own libraries do.
        if ts is None:
            raise TimestampInvalid(f"{self.header} has no t= timestamp")
        if not sigs:
            raise SignatureMalformed(f"{self.header} has no v1= signature")
        if len(sigs) > MAX_SIGNATURES:
            raise SignatureMalformed(f"{self.header} lists too many signatures")
        return SignatureClaim(
            self.algorithm, tuple(sigs), self.signed_prefix(timestamp=ts, message_id=None), ts
        )

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        return {self.header: f"t={timestamp},v1={digests['sha256'].hex()}"}

    respellable = True

    def respelled(self, headers: Mapping[str, str]) -> dict[str, str] | None:
        # A v0 entry (Stripe's test-mode scheme) after the v1: Stripe's libraries read only v1.
        out = dict(headers)
        out[self.header] = f"{out[self.header]},v0={'0' * 64}"
        return out

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
