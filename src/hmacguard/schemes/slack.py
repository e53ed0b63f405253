"""Slack: ``X-Slack-Signature: v0=<hex>`` over ``"v0:<ts>:" + body``, the timestamp in
``X-Slack-Request-Timestamp``.

Source: Slack's "Verifying requests from Slack".
"""

from __future__ import annotations

from collections.abc import Mapping

from hmacguard.errors import ConfigurationError, SignatureMalformed, SignatureMissing, TimestampInvalid
from hmacguard.schemes.base import Scheme, SignatureClaim, header_value, lowered, parse_timestamp, unhex

__all__ = ["SlackScheme"]


class SlackScheme(Scheme):
    name = "slack"
    timestamped = True
    header = "X-Slack-Signature"
    ts_header = "X-Slack-Request-Timestamp"

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        if timestamp is None:
            raise ConfigurationError("slack signs a timestamp; none given")
        return f"v0:{timestamp}:".encode("ascii")

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        h = lowered(headers)
        value = header_value(h, self.header)
        try:
            ts = parse_timestamp(header_value(h, self.ts_header), self.ts_header)
        except SignatureMissing:
            raise TimestampInvalid(f"missing {self.ts_header} header") from None
        version, sep, digest = value.partition("=")
        if not sep or version.strip() != "v0":
            raise SignatureMalformed(f"{self.header} must look like v0=<hex>")
        sig = unhex(digest.strip(), self.digest_size, self.header)
        return SignatureClaim(self.algorithm, (sig,), self.signed_prefix(timestamp=ts, message_id=None), ts)

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        return {self.header: "v0=" + digests["sha256"].hex(), self.ts_header: str(timestamp)}

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
