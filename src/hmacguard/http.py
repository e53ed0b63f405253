"""HTTP types the guard and the scanner share: a lower-cased header map and the request head.

Standard library only; nothing here reads a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LowerCaseHeaders", "RequestHead", "lower_headers"]


class LowerCaseHeaders(dict[str, str]):
    """A header map whose names are already lower case, so parsing need not copy it again.

    The guard's integrations build one per request while reading the server's headers anyway.
    """


def lower_headers(pairs: Iterable[tuple[str, str]]) -> LowerCaseHeaders:
    """Lower-case header names; repeated fields joined with ``", "`` as RFC 9110 5.3 allows."""
    out = LowerCaseHeaders()
    for name, value in pairs:
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


@dataclass(slots=True)
class RequestHead:
    """What the guard knows before reading the body. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: Mapping[str, str]
    #: The socket peer's address as the server reports it (see the trust model in guard/ratelimit.py).
    peer: str | None = None
