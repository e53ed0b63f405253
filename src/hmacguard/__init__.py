"""hmacguard: find, fix and prove fixed memory exhaustion in endpoints that verify HMAC signatures.

The importable part is the guard -- the fix -- and it needs only the standard library:

    from hmacguard import Verifier, WSGIGuard

    app = WSGIGuard(app, verifier=Verifier("github", secrets=[SECRET]), paths=["/webhook"])

- :class:`Verifier` verifies a signed body as a stream under a hard cap (default 1 MiB), with secret
  rotation, timestamp tolerance, gzip under its own cap, a body read timeout and replay protection.
- :class:`WSGIGuard` / :class:`ASGIGuard` put it in front of any WSGI / ASGI application; the
  framework integrations live in :mod:`hmacguard.integrations`.
- :class:`RateLimiter` (on ``limits``), :class:`MemoryReplayStore` / :class:`RedisReplayStore`
  (redis-py): optional back-ends, imported only when constructed.
- :class:`Signer` signs bodies (and httpx requests) on the sending side.
- :class:`Decision` describes what the guard decided about each protected request: logged at DEBUG
  on the ``hmacguard`` logger and given to ``on_decision`` sinks such as
  :class:`PrometheusMetrics` and :class:`OpenTelemetryMetrics` (optional back-ends, imported only
  when constructed).
- Every refusal is a :class:`RequestRejected` with an HTTP status, answered as RFC 9457 problem+json.

The scanner, audit, leak finder and lab are command-line tools (``hmacguard --help``).
"""

from __future__ import annotations

from hmacguard.errors import (
    BadRequest,
    BodyMalformed,
    BodyStorageUnavailable,
    BodyTimeout,
    BodyTooLarge,
    ConfigurationError,
    HmacGuardError,
    PathInvalid,
    RateLimited,
    ReplayDetected,
    RequestRejected,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    StoreUnavailable,
    TargetError,
    TimestampInvalid,
    UnsupportedEncoding,
)
from hmacguard.guard.body import DEFAULT_MAX_BODY, BoundedBody, MemoryBudget
from hmacguard.guard.clients import client_address
from hmacguard.guard.decision import Decision
from hmacguard.guard.otel import OpenTelemetryMetrics
from hmacguard.guard.policy import Accepted, Guard, Rejected
from hmacguard.guard.problem import Problem, problem_for
from hmacguard.guard.prometheus import PrometheusMetrics
from hmacguard.guard.ratelimit import RateLimiter
from hmacguard.guard.replay import Delivery, MemoryReplayStore, RedisReplayStore, ReplayStore
from hmacguard.guard.signer import Signer
from hmacguard.guard.verifier import Verification, VerifiedBody, Verifier
from hmacguard.http import RequestHead
from hmacguard.integrations.asgi import ASGIGuard
from hmacguard.integrations.wsgi import WSGIGuard
from hmacguard.schemes import SCHEME_NAMES, Scheme, get_scheme

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_BODY",
    "SCHEME_NAMES",
    "ASGIGuard",
    "Accepted",
    "BadRequest",
    "BodyMalformed",
    "BodyStorageUnavailable",
    "BodyTimeout",
    "BodyTooLarge",
    "BoundedBody",
    "ConfigurationError",
    "Decision",
    "Delivery",
    "Guard",
    "HmacGuardError",
    "MemoryBudget",
    "MemoryReplayStore",
    "OpenTelemetryMetrics",
    "PathInvalid",
    "Problem",
    "PrometheusMetrics",
    "RateLimited",
    "RateLimiter",
    "RedisReplayStore",
    "Rejected",
    "ReplayDetected",
    "ReplayStore",
    "RequestHead",
    "RequestRejected",
    "Scheme",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "Signer",
    "StoreUnavailable",
    "TargetError",
    "TimestampInvalid",
    "UnsupportedEncoding",
    "Verification",
    "VerifiedBody",
    "Verifier",
    "WSGIGuard",
    "__version__",
    "client_address",
    "get_scheme",
    "problem_for",
]
