"""Schemes by name: what ``Verifier("stripe", ...)`` and ``--scheme stripe`` look up."""

from __future__ import annotations

from hmacguard.errors import ConfigurationError
from hmacguard.schemes.base import Scheme
from hmacguard.schemes.generic import GenericScheme
from hmacguard.schemes.github import GitHubScheme
from hmacguard.schemes.slack import SlackScheme
from hmacguard.schemes.standard_webhooks import StandardWebhooksScheme
from hmacguard.schemes.stripe import StripeScheme

__all__ = ["SCHEME_NAMES", "get_scheme"]

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
