"""Build the guard from plain configuration data: Django's ``settings.HMACGUARD``, Flask's
``app.config["HMACGUARD"]``.

Frameworks keep configuration as data (strings, numbers, lists), so this maps one dict onto the
keyword-only options of :class:`~hmacguard.Verifier`, :class:`~hmacguard.RateLimiter` and the
middleware. Upper-case keys, as settings are; an unknown key is a
:class:`~hmacguard.errors.ConfigurationError` at start-up, so a typo such as ``MAX_BODDY`` cannot
silently leave the default in force::

    HMACGUARD = {
        "SCHEME": "github",                 # or stripe, slack, standard-webhooks, generic
        "SCHEME_OPTIONS": {},               # generic only: header, prefix, encoding, algorithm
        "SECRETS": [os.environ["WEBHOOK_SECRET"]],  # several for rotation, current first
        "PATHS": ["/webhook", "/hooks/*"],  # None: every request
        "METHODS": None,                    # None: every method on those paths
        "MAX_BODY": 1024 * 1024,
        "BODY_TIMEOUT": 30,
        "TOLERANCE": 300,
        "REPLAY": "memory",                 # None, "memory", or "redis://host:6379/0"
        "RATE_LIMIT": {"LIMIT": "60/minute", "FAILURE_LIMIT": "10/minute"},  # or None
        "ON_DECISION": ["myproject.metrics.webhook_decisions"],  # callables or dotted paths
    }

Standard library only; the framework modules import this, never the other way round.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from hmacguard.errors import ConfigurationError
from hmacguard.guard.ratelimit import RateLimiter
from hmacguard.guard.replay import RedisReplayStore, ReplayStore
from hmacguard.guard.verifier import Verifier
from hmacguard.schemes import get_scheme

__all__ = ["guard_options"]

# settings key -> Verifier keyword
_VERIFIER_KEYS = {
    "MAX_BODY": "max_body",
    "MAX_INFLATED_BODY": "max_inflated_body",
    "ALLOW_GZIP": "allow_gzip",
    "SPOOL_THRESHOLD": "spool_threshold",
    "MEMORY_BUDGET": "memory_budget",
    "CHUNK_SIZE": "chunk_size",
    "TOLERANCE": "tolerance",
    "FUTURE_TOLERANCE": "future_tolerance",
    "BODY_TIMEOUT": "body_timeout",
    "REPLAY_TTL": "replay_ttl",
}
# RATE_LIMIT key -> RateLimiter keyword
_LIMITER_KEYS = {
    "LIMIT": "limit",
    "BYTES_LIMIT": "bytes_limit",
    "FAILURE_LIMIT": "failure_limit",
    "STORAGE": "storage",
    "STRATEGY": "strategy",
    "KEY": "key",
    "TRUSTED_PROXIES": "trusted_proxies",
    "FAIL_OPEN": "fail_open",
    "TIMEOUT": "timeout",
    "PREFIX": "prefix",
}
_OWN_KEYS = {"SCHEME", "SCHEME_OPTIONS", "SECRETS", "PATHS", "METHODS", "REPLAY", "RATE_LIMIT", "ON_DECISION"}
_ALL_KEYS = _OWN_KEYS | set(_VERIFIER_KEYS)


def _check_keys(config: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in config if k not in allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _replay(value: Any, where: str) -> ReplayStore | str | None:
    if value is None or value == "memory" or isinstance(value, ReplayStore):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value.startswith(("redis://", "rediss://", "unix://")):
        return RedisReplayStore(value)
    raise ConfigurationError(
        f"{where}['REPLAY'] must be None, 'memory', a redis:// URL or a ReplayStore, not {value!r}"
    )


def _rate_limiter(value: Any, where: str) -> RateLimiter | None:
    if value is None or isinstance(value, RateLimiter):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}['RATE_LIMIT'] must be a dict, a RateLimiter or None")
    _check_keys(value, set(_LIMITER_KEYS), f"{where}['RATE_LIMIT']")
    options = {_LIMITER_KEYS[k]: v for k, v in value.items()}
    # A dict that names no budget means "the defaults" (60 requests a minute), not "no budget".
    return RateLimiter(**options)


def guard_options(config: Any, *, where: str = "HMACGUARD") -> dict[str, Any]:
    """``verifier``, ``rate_limiter``, ``paths`` and ``methods`` for the middleware, from ``config``.

    ``where`` names the setting in error messages. Raises ConfigurationError on any mistake.
    """
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{where} must be a dict, not {type(config).__name__}")
    _check_keys(config, _ALL_KEYS, where)
    if "SECRETS" not in config or not config["SECRETS"]:
        raise ConfigurationError(f"{where}['SECRETS'] is required (one secret, or a list)")
    options = config.get("SCHEME_OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where}['SCHEME_OPTIONS'] must be a dict")
    scheme = get_scheme(config.get("SCHEME", "github"), **options)
    secrets = config["SECRETS"]
    if not isinstance(secrets, (str, bytes)):
        secrets = list(secrets)
    verifier = Verifier(
        scheme,
        secrets=secrets,
        replay=_replay(config.get("REPLAY", "memory"), where),  # type: ignore[arg-type]
        **{kw: config[key] for key, kw in _VERIFIER_KEYS.items() if key in config},
    )
    return {
        "verifier": verifier,
        "rate_limiter": _rate_limiter(config.get("RATE_LIMIT"), where),
        "paths": config.get("PATHS"),
        "methods": config.get("METHODS"),
        "on_decision": _sinks(config.get("ON_DECISION"), where),
    }


def _sinks(value: Any, where: str) -> list[Callable[..., Any]] | None:
    """``ON_DECISION``: a callable, a dotted path to one, or a list of either."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            module, _, name = item.rpartition(".")
            try:
                item = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError):
                raise ConfigurationError(f"{where}['ON_DECISION']: cannot import {item!r}") from None
        if not callable(item):
            raise ConfigurationError(f"{where}['ON_DECISION'] takes callables or dotted paths, not {item!r}")
        out.append(item)
    return out
