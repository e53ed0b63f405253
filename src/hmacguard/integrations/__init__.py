"""Put the guard in front of an application.

- :mod:`hmacguard.integrations.wsgi` -- :class:`WSGIGuard` (any WSGI app) and ``guard_environ``.
- :mod:`hmacguard.integrations.asgi` -- :class:`ASGIGuard` (any ASGI app) and ``guard_receive``.
- ``django``, ``flask``, ``fastapi`` -- idiomatic integrations built on those two drivers; each
  imports its framework, so import them by their module path.

Both drivers run the same sans-I/O decision core (:mod:`hmacguard.guard.policy`).
"""

from __future__ import annotations

from hmacguard.integrations.asgi import ASGIGuard, guard_receive
from hmacguard.integrations.wsgi import WSGIGuard, guard_environ

__all__ = ["ASGIGuard", "WSGIGuard", "guard_environ", "guard_receive"]
