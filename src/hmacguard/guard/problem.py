"""RFC 9457 problem details for the guard's refusals: ``application/problem+json``, no internals.

A refusal says what was wrong with the request (the error's message, written never to contain a secret,
a signature or body bytes) and nothing about the server: no exception class, no stack, no paths.

``413``, ``408`` and ``415`` are answered with ``Connection: close``: the rest of the body is never
read, so the connection cannot be reused for another request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from hmacguard.errors import BodyTooLarge, RateLimited, RequestRejected

__all__ = ["PROBLEM_CONTENT_TYPE", "PROBLEM_TYPE_PREFIX", "Problem", "problem_for"]

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: ``type`` URIs are URNs: stable identifiers that promise no documentation server.
PROBLEM_TYPE_PREFIX = "urn:hmacguard:problem:"


@dataclass(frozen=True)
class Problem:
    """A rendered refusal: status, headers (latin-1-safe strings) and the JSON body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: Whether the server must close the connection (the body was not drained).
    close_connection: bool = False
    slug: str = field(default="rejected")

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


def problem_for(
    error: RequestRejected,
    *,
    instance: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    connection_header: bool = True,
) -> Problem:
    """The problem+json answer for ``error``.

    ``instance`` is the request path (kept only if it is short and printable ASCII: it is echoed).
    ``connection_header=False`` leaves ``Connection: close`` out for servers that forbid hop-by-hop
    headers from applications (wsgiref); the connection is still flagged in ``close_connection``.
    """
    doc: dict[str, object] = {
        "type": PROBLEM_TYPE_PREFIX + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": str(error) or error.title,
    }
    if instance and len(instance) <= 256 and instance.isascii() and instance.isprintable():
        doc["instance"] = instance
    if isinstance(error, BodyTooLarge):
        doc["max_body"] = error.limit
    headers: list[tuple[str, str]] = []
    if isinstance(error, RateLimited):
        doc["retry_after"] = error.retry_after
        headers.append(("Retry-After", str(error.retry_after)))
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    headers = [
        ("Content-Type", PROBLEM_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *headers,
        *extra_headers,
    ]
    if error.close_connection and connection_header:
        headers.append(("Connection", "close"))
    return Problem(
        error.status, tuple(headers), body, close_connection=error.close_connection, slug=error.slug
    )
