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
import hmac
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
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
    "normalized_claim",
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
        # A custom scheme's claim is normalized where it leaves its parser (normalized_claim), so
        # that every caller -- the verifier, the lane, compiled or not -- gets a well-typed claim.
        # Decided once per class, here: our own schemes build well-typed claims and keep their
        # parsers as they are (no work per request); Scheme.parse_environ calls the wrapped parse.
        if cls.__module__ not in _BUILT_IN_MODULES:
            for name in ("parse", "parse_environ"):
                method = cls.__dict__.get(name)
                if method is not None and method is not Scheme.parse_environ:
                    setattr(cls, name, _normalizing(method))

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


#: The modules of our own schemes, whose parsers build well-typed claims (not normalized).
_BUILT_IN_MODULES = frozenset(
    f"hmacguard.schemes.{name}" for name in ("generic", "github", "slack", "standard_webhooks", "stripe")
)
#: Hash names an HMAC was built with once (a claim naming another is checked before it is used).
_HMAC_NAMES: set[str] = set()


def _normalizing(method: Any) -> Callable[..., SignatureClaim]:
    """A custom scheme's ``parse`` or ``parse_environ``, its claim passed through
    :func:`normalized_claim`."""

    @functools.wraps(method)
    def parse(self: Scheme, *args: Any, **kwargs: Any) -> SignatureClaim:
        return normalized_claim(method.__get__(self, type(self))(*args, **kwargs))

    return parse


def normalized_claim(claim: object) -> SignatureClaim:
    """A custom scheme's claim as the guard reads it, or :class:`SignatureMalformed` (400).

    The guard's compiled build checks a claim's declared types where pure Python took any object,
    so both builds read a custom scheme's claim through this one function (called where the
    scheme's parser returns): a :class:`SignatureClaim`, or any tuple or object with its fields in
    its order (``timestamp`` and ``message_id`` may be left out). ``signatures``: bytes-like items
    (``bytes``, ``bytearray``, ``memoryview``), as a tuple of bytes; ``prefix``: bytes-like, or
    ``None`` or ``""`` for none; ``timestamp``: ``None`` or a whole number of seconds;
    ``message_id``: ``None``, text, an integer (its digits) or ASCII bytes; ``algorithm``: the
    name of a hash an HMAC can use. Text where bytes are wanted is refused, not encoded: which
    encoding the sender signed is the scheme's to know.
    """
    try:
        if isinstance(claim, tuple):
            if not 3 <= len(claim) <= 5:
                raise SignatureMalformed(f"the scheme's claim has {len(claim)} fields, not 3 to 5")
            algorithm, signatures, prefix, timestamp, message_id = (*claim, None, None)[:5]
        else:
            algorithm, signatures, prefix = claim.algorithm, claim.signatures, claim.prefix  # type: ignore[attr-defined]
            timestamp = getattr(claim, "timestamp", None)
            message_id = getattr(claim, "message_id", None)
        return make_claim(
            (
                _algorithm(algorithm),
                _signatures(signatures),
                b"" if prefix is None or prefix == "" else _bytes(prefix, "prefix"),
                _timestamp(timestamp),
                _message_id(message_id),
            )
        )
    except SignatureMalformed:
        raise
    except Exception as exc:  # an attribute missing, a property raising, an iteration failing
        raise SignatureMalformed(f"the scheme's claim cannot be read ({type(exc).__name__})") from None


def _algorithm(value: object) -> str:
    if not isinstance(value, str):
        raise SignatureMalformed("the scheme's claim names no hash algorithm")
    name = str(value)
    if name not in _HMAC_NAMES:
        try:
            hmac.new(b"k", digestmod=name).digest()
        except (ValueError, TypeError):  # unknown to hashlib, or one without a fixed size (shake)
            raise SignatureMalformed(f"the scheme's claim names an unknown hash {name!r}") from None
        _HMAC_NAMES.add(name)
    return name


def _bytes(value: object, field: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise SignatureMalformed(f"the scheme's claim has a {field} that is not bytes ({type(value).__name__})")


def _signatures(value: object) -> tuple[bytes, ...]:
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, (tuple, list)):
        raise SignatureMalformed("the scheme's claim has no tuple or list of signatures")
    return tuple(_bytes(item, "signature") for item in value)


def _timestamp(value: object) -> int | None:
    # A whole float (1700000000.0) is that int exactly. A fractional one is refused rather than
    # rounded: int() would move it by up to a second, and a delivery at the tolerance's edge would
    # be judged fresh or stale otherwise than its signed value says.
    if value is None or type(value) is int:
        return value  # type: ignore[return-value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise SignatureMalformed("the scheme's claim has a timestamp that is not a whole number of seconds")


def _message_id(value: object) -> str | None:
    if value is None or type(value) is str:
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        # A numeric id (a counter) has one spelling: its digits, as pure Python's replay key had it.
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            pass
    raise SignatureMalformed("the scheme's claim has a message id that is not text")
