"""The sending side of every scheme: sign a body as it streams by, or forge well-formed headers.

Used by :class:`hmacguard.Signer`, the scanner and the lab's client.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterable

from hmacguard.schemes.base import Scheme, Secret
from hmacguard.schemes.registry import get_scheme

__all__ = ["StreamingSigner", "forged_headers", "sign_body"]


class StreamingSigner:
    """Signs a body fed in chunks; :meth:`headers` gives every header the provider would send."""

    def __init__(
        self,
        scheme: str | Scheme,
        secret: Secret,
        *,
        timestamp: int | None = None,
        message_id: str | None = None,
    ) -> None:
        self.scheme = get_scheme(scheme)
        self.timestamp = int(time.time()) if timestamp is None else timestamp
        self.message_id = self.scheme.new_message_id() if message_id is None else message_id
        key = self.scheme.key(secret)
        prefix = self.scheme.signed_prefix(timestamp=self.timestamp, message_id=self.message_id)
        self._macs = {alg: hmac.new(key, prefix, alg) for alg in self.scheme.signing_algorithms()}

    def update(self, chunk: bytes) -> None:
        for mac in self._macs.values():
            mac.update(chunk)

    def headers(self) -> dict[str, str]:
        digests = {alg: mac.digest() for alg, mac in self._macs.items()}
        out = self.scheme.provider_headers(message_id=self.message_id)
        out.update(self.scheme.render(digests, timestamp=self.timestamp, message_id=self.message_id))
        return out


def sign_body(
    scheme: str | Scheme,
    secret: Secret,
    body: bytes | Iterable[bytes],
    *,
    timestamp: int | None = None,
    message_id: str | None = None,
) -> dict[str, str]:
    """Every header a provider sends with ``body`` (bytes or an iterable of chunks), signed."""
    signer = StreamingSigner(scheme, secret, timestamp=timestamp, message_id=message_id)
    for chunk in [body] if isinstance(body, bytes) else body:
        signer.update(chunk)
    return signer.headers()


def forged_headers(
    scheme: str | Scheme, *, timestamp: int | None = None, message_id: str | None = None
) -> dict[str, str]:
    """Well-formed headers carrying a random (wrong) signature: the unauthenticated attacker's view.

    No body is hashed, so probing with a 100 MiB body costs the prober nothing.
    """
    s = get_scheme(scheme)
    ts = int(time.time()) if timestamp is None else timestamp
    mid = s.new_message_id() if message_id is None else message_id
    digests = {alg: os.urandom(hashlib.new(alg).digest_size) for alg in s.signing_algorithms()}
    out = s.provider_headers(message_id=mid)
    out.update(s.render(digests, timestamp=ts, message_id=mid))
    return out
