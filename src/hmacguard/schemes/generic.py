"""Generic: a plain HMAC of the body in one configurable header, ``<prefix><hex or base64>``,
SHA-256 or SHA-512.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from hmacguard.errors import ConfigurationError, SignatureMalformed
from hmacguard.schemes.base import Scheme, SignatureClaim, header_value, lowered, unb64, unhex

__all__ = ["GenericScheme"]


class GenericScheme(Scheme):
    """A plain HMAC of the body in one header: ``<prefix><hex or base64 digest>``."""

    name = "generic"
    content_type = "application/octet-stream"

    def __init__(
        self,
        *,
        header: str = "X-Signature",
        prefix: str = "",
        encoding: str = "hex",
        algorithm: str = "sha256",
    ) -> None:
        if encoding not in ("hex", "base64"):
            raise ConfigurationError(f"generic: encoding must be hex or base64, not {encoding!r}")
        if algorithm not in ("sha256", "sha512"):
            raise ConfigurationError(f"generic: algorithm must be sha256 or sha512, not {algorithm!r}")
        if not header or any(c in header for c in ": \r\n"):
            raise ConfigurationError(f"generic: {header!r} is not a header name")
        self.header = header
        self.prefix = prefix
        self.encoding = encoding
        self.algorithm = algorithm

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        return b""

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        value = header_value(lowered(headers), self.header)
        if not value.startswith(self.prefix):
            raise SignatureMalformed(f"{self.header} must start with {self.prefix!r}")
        digest = value[len(self.prefix) :].strip()
        if self.encoding == "hex":
            sig = unhex(digest, self.digest_size, self.header)
        else:
            sig = unb64(digest, self.digest_size, self.header)
        return SignatureClaim(self.algorithm, (sig,), b"")

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        raw = digests[self.algorithm]
        text = raw.hex() if self.encoding == "hex" else base64.b64encode(raw).decode("ascii")
        return {self.header: self.prefix + text}
