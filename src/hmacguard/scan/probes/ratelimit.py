"""What a response says about rate limiting: the headers that advertise it, and the allowance.

Read in the formats in use: ``RateLimit-Policy`` (IETF httpapi drafts: ``"name";q=20;w=60`` items,
or the older ``100;w=60``), ``RateLimit`` (``limit=100, remaining=50`` or ``"name";r=50;t=30``),
``RateLimit-Limit``/``-Remaining`` and the ``X-RateLimit-*`` / ``X-Rate-Limit-*`` spellings.
"""

from __future__ import annotations

from collections.abc import Iterable

from hmacguard.scan.wire import Exchange

__all__ = ["RATE_LIMIT_PREFIXES", "advertised_allowance", "rate_limit_headers"]

#: Header names (or prefixes) that advertise rate limiting.
RATE_LIMIT_PREFIXES = ("ratelimit", "x-ratelimit", "x-rate-limit", "retry-after")
_COUNTS = {
    "ratelimit-limit", "x-ratelimit-limit", "x-rate-limit-limit",
    "ratelimit-remaining", "x-ratelimit-remaining", "x-rate-limit-remaining",
}  # fmt: skip


def rate_limit_headers(ex: Exchange) -> list[str]:
    return [name for name, _ in ex.headers if name.startswith(RATE_LIMIT_PREFIXES)]


def _number(text: str) -> int | None:
    text = text.strip().strip('"')
    return int(text) if text.isdigit() else None


def _items(value: str) -> Iterable[tuple[int | None, dict[str, str]]]:
    """Each comma-separated item: its bare leading number (if any) and its key=value parameters."""
    for item in value.split(","):
        parts = [p.strip() for p in item.split(";")]
        params = {}
        for part in parts:
            key, sep, val = part.partition("=")
            if sep:
                params[key.strip().lower()] = val.strip()
        yield (_number(parts[0]) if parts else None), params


def advertised_allowance(exchanges: Iterable[Exchange]) -> int | None:
    """The fewest requests any advertised limit allows (its quota, or what remains of it)."""
    found: list[int] = []
    for ex in exchanges:
        for name, value in ex.headers:
            if name in _COUNTS:
                number = _number(value.split(",")[0].split(";")[0])
                if number is not None:
                    found.append(number)
            elif name == "ratelimit-policy":
                for bare, params in _items(value):
                    quota = _number(params.get("q", "")) if "q" in params else bare
                    if quota is not None:
                        found.append(quota)
            elif name == "ratelimit":
                for _, params in _items(value):
                    for key in ("r", "remaining"):
                        number = _number(params.get(key, ""))
                        if number is not None:
                            found.append(number)
    return min(found) if found else None
