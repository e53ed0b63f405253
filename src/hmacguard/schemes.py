"""Signature schemes: how each provider signs a body, shared by the guard (verify) and scanner (sign).

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

import base64
import binascii
import hashlib
import hmac
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hmacguard.errors import (
    ConfigurationError,
    SignatureMalformed,
    SignatureMissing,
    TimestampInvalid,
)

__all__ = [
    "SCHEME_NAMES",
    "GenericScheme",
    "GitHubScheme",
    "LowerCaseHeaders",
    "Scheme",
    "SignatureClaim",
    "SlackScheme",
    "StandardWebhooksScheme",
    "StreamingSigner",
    "StripeScheme",
    "forged_headers",
    "get_scheme",
    "sign_body",
]

Secret = str | bytes
#: Longest header value we parse at all; a longer one is malformed, not something to split and scan.
_MAX_HEADER = 4096
_DIGEST_SIZES: dict[str, int] = {}
#: Most signatures one header may list (rotation sends a handful, never hundreds).
_MAX_SIGNATURES = 8


@dataclass(frozen=True)
class SignatureClaim:
    """What a request's headers claim: candidate digests, and what to feed the HMAC before the body."""

    algorithm: str
    signatures: tuple[bytes, ...]
    prefix: bytes
    timestamp: int | None = None
    message_id: str | None = None


class LowerCaseHeaders(dict[str, str]):
    """A header map whose names are already lower case, so parsing need not copy it again.

    The guard's integrations build one per request while reading the server's headers anyway.
    """


def _lower(headers: Mapping[str, str]) -> Mapping[str, str]:
    if type(headers) is LowerCaseHeaders:
        return headers
    return {k.lower(): v for k, v in headers.items()}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise SignatureMissing(f"missing {name} header")
    value = value.strip()
    if len(value) > _MAX_HEADER:
        raise SignatureMalformed(f"{name} header is too long")
    return value


def _unhex(text: str, size: int, header: str) -> bytes:
    if len(text) != size * 2:
        raise SignatureMalformed(f"{header} digest has the wrong length")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SignatureMalformed(f"{header} digest is not hexadecimal") from None


def _unb64(text: str, size: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SignatureMalformed(f"{header} digest is not base64") from None
    if len(raw) != size:
        raise SignatureMalformed(f"{header} digest has the wrong length")
    return raw


def _timestamp(text: str, header: str) -> int:
    text = text.strip()
    # Digits only: int() would also take "+1_0", " 1", "١٢" and other surprises.
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise TimestampInvalid(f"{header} is not a Unix timestamp")
    return int(text)


def _utf8(secret: Secret) -> bytes:
    if isinstance(secret, bytes):
        return secret
    return secret.encode("utf-8")


class Scheme(ABC):
    """A provider's signature format. Subclasses are small and stateless."""

    name: str
    #: The hash the signature uses (a ``hashlib`` name).
    algorithm: str = "sha256"
    #: Whether the scheme signs a timestamp (and so can be checked for freshness).
    timestamped: bool = False
    #: Whether the scheme carries a per-delivery id usable for replay protection.
    has_message_id: bool = False
    #: Whether that id is covered by the signature (only then can it be trusted as a nonce).
    signs_message_id: bool = False
    #: Content type the provider sends.
    content_type: str = "application/json"

    @property
    def digest_size(self) -> int:
        # Looked up on every parse: build a hash object once per algorithm, not once per request.
        size = _DIGEST_SIZES.get(self.algorithm)
        if size is None:
            size = _DIGEST_SIZES[self.algorithm] = hashlib.new(self.algorithm).digest_size
        return size

    def key(self, secret: Secret) -> bytes:
        """The HMAC key derived from a user-supplied secret."""
        key = _utf8(secret)
        if not key:
            raise ConfigurationError(f"{self.name}: the secret is empty")
        return key

    @abstractmethod
    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        """Bytes fed to the HMAC before the body."""

    @abstractmethod
    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        """Read the claim from request headers (any case); raise a RequestRejected subclass."""

    @abstractmethod
    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        """Signature headers for the given digests (``{algorithm: digest}``)."""

    def signing_algorithms(self) -> tuple[str, ...]:
        """Every hash the sending side computes (GitHub also sends a legacy SHA-1 header)."""
        return (self.algorithm,)

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        """Headers a real provider sends beside the signature, which receivers may check first."""
        return {"Content-Type": self.content_type}

    def new_message_id(self) -> str:
        return str(uuid.uuid4())


class GitHubScheme(Scheme):
    name = "github"
    has_message_id = True
    header = "X-Hub-Signature-256"

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        return b""

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        h = _lower(headers)
        value = _header(h, self.header)
        kind, sep, digest = value.partition("=")
        if not sep or kind.strip().lower() != "sha256":
            raise SignatureMalformed(f"{self.header} must look like sha256=<hex>")
        sig = _unhex(digest.strip(), self.digest_size, self.header)
        delivery = h.get("x-github-delivery")
        return SignatureClaim(self.algorithm, (sig,), b"", None, delivery.strip() if delivery else None)

    def signing_algorithms(self) -> tuple[str, ...]:
        return ("sha256", "sha1")

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        out = {self.header: "sha256=" + digests["sha256"].hex()}
        if "sha1" in digests:
            out["X-Hub-Signature"] = "sha1=" + digests["sha1"].hex()
        return out

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/hmacguard",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": message_id or self.new_message_id(),
            "X-GitHub-Hook-ID": "1",
        }


class StripeScheme(Scheme):
    name = "stripe"
    timestamped = True
    header = "Stripe-Signature"

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        if timestamp is None:
            raise ConfigurationError("stripe signs a timestamp; none given")
        return f"{timestamp}.".encode("ascii")

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        value = _header(_lower(headers), self.header)
        ts: int | None = None
        sigs: list[bytes] = []
        for item in value.split(","):
            k, sep, v = item.strip().partition("=")
            if not sep:
                raise SignatureMalformed(f"{self.header} items must be key=value")
            if k == "t":
                ts = _timestamp(v, f"{self.header} t")
            elif k == "v1":
                sigs.append(_unhex(v.strip(), self.digest_size, self.header))
            # Other schemes (v0 = test mode) are ignored, as Stripe's own libraries do.
        if ts is None:
            raise TimestampInvalid(f"{self.header} has no t= timestamp")
        if not sigs:
            raise SignatureMalformed(f"{self.header} has no v1= signature")
        if len(sigs) > _MAX_SIGNATURES:
            raise SignatureMalformed(f"{self.header} lists too many signatures")
        return SignatureClaim(
            self.algorithm, tuple(sigs), self.signed_prefix(timestamp=ts, message_id=None), ts
        )

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        return {self.header: f"t={timestamp},v1={digests['sha256'].hex()}"}

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}


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
        h = _lower(headers)
        value = _header(h, self.header)
        try:
            ts = _timestamp(_header(h, self.ts_header), self.ts_header)
        except SignatureMissing:
            raise TimestampInvalid(f"missing {self.ts_header} header") from None
        version, sep, digest = value.partition("=")
        if not sep or version.strip() != "v0":
            raise SignatureMalformed(f"{self.header} must look like v0=<hex>")
        sig = _unhex(digest.strip(), self.digest_size, self.header)
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
        h = _lower(headers)
        value = _header(h, "webhook-signature")
        try:
            msg_id = _header(h, "webhook-id")
            ts_text = _header(h, "webhook-timestamp")
        except SignatureMissing as exc:
            raise SignatureMalformed(str(exc)) from None
        if not msg_id.isprintable() or "." in msg_id or len(msg_id) > 256:
            raise SignatureMalformed("webhook-id is not a valid message id")
        ts = _timestamp(ts_text, "webhook-timestamp")
        sigs: list[bytes] = []
        for item in value.split():
            version, sep, b64 = item.partition(",")
            if not sep:
                raise SignatureMalformed("webhook-signature items must look like v1,<base64>")
            if version == "v1":
                sigs.append(_unb64(b64, self.digest_size, "webhook-signature"))
            # Asymmetric (v1a) signatures are not HMAC; skip them as the spec allows.
        if not sigs:
            raise SignatureMalformed("webhook-signature has no v1 signature")
        if len(sigs) > _MAX_SIGNATURES:
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

    def new_message_id(self) -> str:
        return "msg_" + uuid.uuid4().hex


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
        value = _header(_lower(headers), self.header)
        if not value.startswith(self.prefix):
            raise SignatureMalformed(f"{self.header} must start with {self.prefix!r}")
        digest = value[len(self.prefix) :].strip()
        if self.encoding == "hex":
            sig = _unhex(digest, self.digest_size, self.header)
        else:
            sig = _unb64(digest, self.digest_size, self.header)
        return SignatureClaim(self.algorithm, (sig,), b"")

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        raw = digests[self.algorithm]
        text = raw.hex() if self.encoding == "hex" else base64.b64encode(raw).decode("ascii")
        return {self.header: self.prefix + text}


_SCHEMES: dict[str, type[Scheme]] = {
    "github": GitHubScheme,
    "stripe": StripeScheme,
    "slack": SlackScheme,
    "standard-webhooks": StandardWebhooksScheme,
    "generic": GenericScheme,
}
SCHEME_NAMES: tuple[str, ...] = tuple(_SCHEMES)


def get_scheme(name: str | Scheme, **options: str) -> Scheme:
    """A scheme by name; ``options`` configure ``generic`` (header, prefix, encoding, algorithm)."""
    if isinstance(name, Scheme):
        return name
    cls = _SCHEMES.get(name)
    if cls is None:
        raise ConfigurationError(f"unknown scheme {name!r} (choose from {', '.join(SCHEME_NAMES)})")
    if cls is GenericScheme:
        return GenericScheme(**options)
    if options:
        raise ConfigurationError(f"scheme {name!r} takes no options ({', '.join(options)} given)")
    return cls()


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
