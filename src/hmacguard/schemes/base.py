"""What every signature scheme shares: the claim a request makes, the :class:`Scheme` base class and
the parsing helpers a scheme author needs.

Every scheme is streaming: the HMAC is fed a scheme-specific prefix (timestamp, message id), then the
body chunk by chunk, so neither side ever needs the whole body in memory.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from hmacguard.errors import ConfigurationError, SignatureMalformed, SignatureMissing, TimestampInvalid
from hmacguard.http import EnvironHeaders, lowered

__all__ = [
    "MAX_HEADER",
    "MAX_SIGNATURES",
    "Scheme",
    "Secret",
    "SignatureClaim",
    "header_value",
    "lowered",
    "make_claim",
    "parse_timestamp",
    "secret_list",
    "unb64",
    "unhex",
    "utf8",
]

Secret = str | bytes
#: Longest header value we parse at all; a longer one is malformed, not something to split and scan.
MAX_HEADER = 4096
#: Most signatures one header may list (rotation sends a handful, never hundreds).
MAX_SIGNATURES = 8
_DIGEST_SIZES: dict[str, int] = {}


class SignatureClaim(NamedTuple):
    """What a request's headers claim: candidate digests, and what to feed the HMAC before the body.

    A named tuple: immutable, and built once per request, where a frozen dataclass costs a
    ``object.__setattr__`` per field.
    """

    algorithm: str
    signatures: tuple[bytes, ...]
    prefix: bytes
    timestamp: int | None = None
    message_id: str | None = None


#: ``make_claim((algorithm, signatures, prefix, timestamp, message_id))``: a :class:`SignatureClaim`
#: from all five fields, built in C -- the named tuple's own ``__new__`` is a Python function reached
#: through ``type.__call__``, twice the cost, on every request's parse.
make_claim = functools.partial(tuple.__new__, SignatureClaim)


def header_value(headers: Mapping[str, str], name: str) -> str:
    """The stripped value of header ``name`` in lower-cased ``headers``; 400 if missing or too long."""
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise SignatureMissing(f"missing {name} header")
    value = value.strip()
    if len(value) > MAX_HEADER:
        raise SignatureMalformed(f"{name} header is too long")
    return value


def unhex(text: str, size: int, header: str) -> bytes:
    """A hex digest of exactly ``size`` bytes, or SignatureMalformed naming ``header``."""
    if len(text) != size * 2:
        raise SignatureMalformed(f"{header} digest has the wrong length")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise SignatureMalformed(f"{header} digest is not hexadecimal") from None
    if len(raw) != size:  # fromhex skips whitespace between pairs: "ab cd..." is not a digest
        raise SignatureMalformed(f"{header} digest is not hexadecimal")
    return raw


def unb64(text: str, size: int, header: str) -> bytes:
    """A base64 digest of exactly ``size`` bytes, or SignatureMalformed naming ``header``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SignatureMalformed(f"{header} digest is not base64") from None
    if len(raw) != size:
        raise SignatureMalformed(f"{header} digest has the wrong length")
    return raw


def parse_timestamp(text: str, header: str) -> int:
    """A Unix timestamp of ASCII digits, or TimestampInvalid naming ``header``."""
    text = text.strip()
    # Digits only: int() would also take "+1_0", " 1", "١٢" and other surprises.
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise TimestampInvalid(f"{header} is not a Unix timestamp")
    return int(text)


def secret_list(secrets: Secret | Sequence[Secret]) -> list[Secret]:
    """The ``secrets=`` argument as a list, current first: one secret or several for rotation."""
    listed = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    if not listed:
        raise ConfigurationError("at least one secret is needed")
    return listed


def utf8(secret: Secret) -> bytes:
    """A secret as bytes (text secrets are UTF-8)."""
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that overrides parse() but not parse_environ() must not inherit a parent's
        # environ shortcut: that shortcut reads the headers without the subclass's parse(), so a
        # check it adds would be skipped on the WSGI lane (tests/guard/test_review_lane_cut.py).
        if "parse" in cls.__dict__ and "parse_environ" not in cls.__dict__:
            cls.parse_environ = Scheme.parse_environ  # type: ignore[method-assign]

    @property
    def digest_size(self) -> int:
        # Looked up on every parse: build a hash object once per algorithm, not once per request.
        size = _DIGEST_SIZES.get(self.algorithm)
        if size is None:
            size = _DIGEST_SIZES[self.algorithm] = hashlib.new(self.algorithm).digest_size
        return size

    def key(self, secret: Secret) -> bytes:
        """The HMAC key derived from a user-supplied secret."""
        key = utf8(secret)
        if not key:
            raise ConfigurationError(f"{self.name}: the secret is empty")
        return key

    @abstractmethod
    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        """Bytes fed to the HMAC before the body."""

    @abstractmethod
    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        """Read the claim from request headers (any case); raise a RequestRejected subclass."""

    def parse_environ(self, environ: Mapping[str, Any]) -> SignatureClaim:
        """:meth:`parse` of a WSGI request's headers, read from its ``environ``.

        A scheme may read its headers' ``HTTP_*`` keys directly for the form senders use, saving
        the header view and its name translations on every request; it must answer exactly as
        :meth:`parse` of :class:`~hmacguard.http.EnvironHeaders` does
        (tests/guard/test_parse_environ.py holds each override to it).
        """
        return self.parse(EnvironHeaders(environ))

    @abstractmethod
    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        """Signature headers for the given digests (``{algorithm: digest}``)."""

    #: Whether :meth:`respelled` gives another spelling of the signature header.
    respellable: bool = False

    def respelled(self, headers: Mapping[str, str]) -> dict[str, str] | None:
        """The same signed ``headers`` (as :meth:`render` wrote them), the signature header spelled
        another way every receiver of the scheme must accept -- an entry its verifiers skip added --
        or ``None`` where the header has one spelling.

        The scanner sends it as a second spelling of one delivery: a receiver that remembers the
        header's text instead of the delivery takes it for a new one.
        """
        return None

    def signing_algorithms(self) -> tuple[str, ...]:
        """Every hash the sending side computes (GitHub also sends a legacy SHA-1 header)."""
        return (self.algorithm,)

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        """Headers a real provider sends beside the signature, which receivers may check first."""
        return {"Content-Type": self.content_type}

    def new_message_id(self) -> str:
        return str(uuid.uuid4())
