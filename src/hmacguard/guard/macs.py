"""The HMAC objects the verifier copies for each request.

One keyed, empty HMAC per secret is built once per verifier and copied per request: copying costs
less than keying (no key padding, no two hash inits).
"""

from __future__ import annotations

import hmac
from typing import Protocol

__all__ = ["Mac", "keyed_mac"]


class Mac(Protocol):
    """What the verifier uses of an HMAC object: ``hmac.HMAC``, or the C object inside it."""

    def copy(self) -> Mac: ...
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


def keyed_mac(key: bytes, algorithm: str) -> Mac:
    """An empty HMAC keyed with ``key``, as cheap to copy, update and finish as this Python allows.

    ``hmac.HMAC`` delegates every call to an OpenSSL object it keeps as ``_hmac`` when OpenSSL
    provides the hash; calling that object directly saves a Python-level call and an object built
    by ``copy()`` on each of the three calls a request makes (a fifth of the guard's cost on a tiny
    body). ``_hmac`` is the standard library's private name: it is used only when present and
    behaving as the public object does (tests/guard/test_verifier.py pins both against
    ``hmac.digest``), and the public object is used otherwise.
    """
    mac = hmac.new(key, digestmod=algorithm)
    inner = getattr(mac, "_hmac", None)
    if inner is not None and all(
        callable(getattr(inner, name, None)) for name in ("copy", "update", "digest")
    ):
        return inner  # type: ignore[no-any-return]
    return mac
