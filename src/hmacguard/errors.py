"""One root error for everything hmacguard raises on purpose.

The tree::

    HmacGuardError                     exit 2 / HTTP 500 (never raised bare)
    ├── ConfigurationError             exit 2: a caller or user configured us wrongly
    ├── TargetError                    exit 2: the scan target is malformed, refused, or not loopback
    └── RequestRejected                the guard refuses a request; ``status`` is the HTTP answer
        ├── BadRequest                 400 malformed/negative/mismatched Content-Length, bad encoding
        │   ├── BodyMalformed          400 the server could not parse the body's framing (chunks)
        │   ├── SignatureMissing       400 no signature header
        │   ├── SignatureMalformed     400 header present but not of the scheme's form
        │   ├── TimestampInvalid       400 timestamp missing, too old or too far in the future
        │   └── PathInvalid            400 a request path the guard cannot interpret (fail closed)
        ├── SignatureMismatch          401 well-formed signature that no secret produces
        ├── BodyTimeout                408 the body arrived too slowly
        ├── ReplayDetected             409 delivery already processed, or being processed
        ├── BodyTooLarge               413 above the cap (answered with ``Connection: close``)
        ├── UnsupportedEncoding        415 a Content-Encoding the guard will not inflate
        ├── RateLimited                429 over a rate limit (carries ``retry_after``)
        ├── StoreUnavailable           503 the replay or rate-limit store cannot be reached
        └── BodyStorageUnavailable     503 a body to spool, and no temporary file to spool it to

Each class knows its HTTP status (for the guard's problem+json answer) and the CLI's exit code, so no
layer above needs a mapping table of its own. Messages never include secrets, signatures or body bytes.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BodyMalformed",
    "BodyStorageUnavailable",
    "BodyTimeout",
    "BodyTooLarge",
    "ConfigurationError",
    "HmacGuardError",
    "PathInvalid",
    "RateLimited",
    "ReplayDetected",
    "RequestRejected",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "StoreUnavailable",
    "TargetError",
    "TimestampInvalid",
    "UnsupportedEncoding",
]


class HmacGuardError(Exception):
    """The root of every error hmacguard raises on purpose."""

    status: int = 500
    exit_code: int = 2
    #: A short, stable slug used as the problem+json ``type`` suffix.
    slug: str = "error"
    title: str = "Internal error"


class ConfigurationError(HmacGuardError, ValueError):
    """A caller or user configured hmacguard wrongly (bad option, unknown scheme, bad size)."""

    slug = "configuration"
    title = "Configuration error"


class TargetError(HmacGuardError):
    """A scan or lab target cannot be used: malformed URL, refused connection, not loopback."""

    slug = "target"
    title = "Target error"


class RequestRejected(HmacGuardError):
    """The guard refuses a request; ``status`` is the HTTP status it answers with."""

    status = 400
    slug = "rejected"
    title = "Request rejected"
    #: Whether the connection must be closed after answering (the body was not drained).
    close_connection: bool = False


class BadRequest(RequestRejected):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class BodyMalformed(BadRequest):
    """The server raised while the guard read the body (a malformed chunk size, a missing CRLF)."""

    slug = "body-malformed"
    title = "Request body framing is malformed"
    close_connection = True


class SignatureMissing(BadRequest):
    slug = "signature-missing"
    title = "Signature missing"


class SignatureMalformed(BadRequest):
    slug = "signature-malformed"
    title = "Signature malformed"


class TimestampInvalid(BadRequest):
    slug = "timestamp-invalid"
    title = "Timestamp missing or outside the tolerance"


class PathInvalid(BadRequest):
    """The path cannot be mapped onto what a router would route (so it is refused, not passed on)."""

    slug = "path-invalid"
    title = "Request path cannot be interpreted"


class SignatureMismatch(RequestRejected):
    status = 401
    slug = "signature-mismatch"
    title = "Signature does not match"


class BodyTimeout(RequestRejected):
    status = 408
    slug = "body-timeout"
    title = "Request body arrived too slowly"
    close_connection = True


class ReplayDetected(RequestRejected):
    status = 409
    slug = "replay"
    title = "Delivery already received"


class BodyTooLarge(RequestRejected):
    status = 413
    slug = "body-too-large"
    title = "Request body too large"
    close_connection = True

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class UnsupportedEncoding(RequestRejected):
    status = 415
    slug = "unsupported-encoding"
    title = "Unsupported content encoding"
    close_connection = True


class RateLimited(RequestRejected):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int, budget: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        #: Which rate-limit budget ran out (``"requests"``, ``"bytes"``, ``"failures"``), if known.
        self.budget = budget


class StoreUnavailable(RequestRejected):
    status = 503
    slug = "store-unavailable"
    title = "Verification store unavailable"


class BodyStorageUnavailable(RequestRejected):
    """A body that must go to a temporary file (past ``spool_threshold``, or past the memory budget)
    and no file could be made or written (a full or unwritable ``TMPDIR``): the server's fault, not
    the request's, so 503 -- the sender may deliver again -- rather than the server's own 500."""

    status = 503
    slug = "body-storage-unavailable"
    title = "No room to keep the request body"
    close_connection = True  # the rest of the body was not read
