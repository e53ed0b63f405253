"""Who a request comes from, for the rate limits: the socket peer, or ``X-Forwarded-For`` read as far
as the operator's own proxies vouch for it (the trust model in :mod:`hmacguard.guard.ratelimit`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from hmacguard.errors import ConfigurationError

__all__ = ["Network", "client_address", "networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(values: Sequence[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` networks, parsed (ConfigurationError for one that is not a network)."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigurationError(f"trusted_proxies: {value!r} is not a network") from None
    return tuple(out)


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(
    peer: str | None,
    headers: Mapping[str, str],
    *,
    trusted_proxies: int | Sequence[str] | tuple[Network, ...] = 0,
) -> str:
    """The client's address under the trust model of :mod:`hmacguard.guard.ratelimit` (``"unknown"``
    if none).

    ``headers`` must have lower-case names.
    """
    peer = peer or "unknown"
    if not trusted_proxies:
        return peer
    forwarded = headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()][-64:]
    if isinstance(trusted_proxies, int):
        return hops[-trusted_proxies] if len(hops) >= trusted_proxies else peer
    nets = (
        trusted_proxies
        if trusted_proxies and not isinstance(trusted_proxies[0], str)
        else networks(trusted_proxies)  # type: ignore[arg-type]
    )
    if not _in(peer, nets):  # type: ignore[arg-type]
        return peer
    for hop in reversed(hops):
        if not _in(hop, nets):  # type: ignore[arg-type]
            return hop
    return hops[0] if hops else peer
