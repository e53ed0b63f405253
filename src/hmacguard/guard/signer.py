"""The sending side: sign bodies the way each provider does, streaming, and sign httpx requests.

:class:`Signer` reads a file or an iterator chunk by chunk, so signing a 10 GiB upload costs one chunk
of memory. With several secrets (rotation) it signs with the first, the one receivers must already
accept. ``Signer.httpx_auth()`` returns an ``httpx.Auth``; httpx is imported only then.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from hmacguard.errors import ConfigurationError
from hmacguard.guard.body import DEFAULT_CHUNK_SIZE, validate_size
from hmacguard.schemes import Scheme, StreamingSigner, get_scheme, secret_list

if TYPE_CHECKING:
    import httpx

__all__ = ["Signer"]

Secret = str | bytes


class Signer:
    """Signs request bodies for ``scheme`` with the first of ``secrets``.

    ``sign`` takes bytes, a binary file (read from its current position, in ``chunk_size`` pieces) or
    an iterable of byte chunks, and returns every header the provider would send: the signature, its
    timestamp and message id, and the provider's content type and user agent.
    """

    def __init__(
        self,
        scheme: str | Scheme = "github",
        *,
        secrets: Secret | Sequence[Secret],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self.scheme = get_scheme(scheme)
        self._secret = secret_list(secrets)[0]
        self.scheme.key(self._secret)  # an unusable secret fails now, not on the first request
        self.chunk_size = validate_size("chunk_size", chunk_size)

    def __repr__(self) -> str:
        return f"Signer({self.scheme.name!r})"

    def start(self, *, timestamp: int | None = None, message_id: str | None = None) -> StreamingSigner:
        """A streaming signer to ``update()`` chunk by chunk, then ask for ``headers()``."""
        return StreamingSigner(self.scheme, self._secret, timestamp=timestamp, message_id=message_id)

    def sign(
        self,
        body: bytes | BinaryIO | Iterable[bytes],
        *,
        timestamp: int | None = None,
        message_id: str | None = None,
    ) -> dict[str, str]:
        """Every header the provider sends with ``body``; ``timestamp`` defaults to now."""
        signer = self.start(timestamp=timestamp, message_id=message_id)
        if isinstance(body, (bytes, bytearray, memoryview)):
            signer.update(bytes(body))
        elif hasattr(body, "read"):
            while chunk := body.read(self.chunk_size):  # type: ignore[union-attr]
                signer.update(chunk)
        else:
            for chunk in body:
                signer.update(chunk)
        return signer.headers()

    def sign_file(
        self,
        path: str | os.PathLike[str],
        *,
        timestamp: int | None = None,
        message_id: str | None = None,
    ) -> dict[str, str]:
        """Sign a file's content without loading it."""
        with open(path, "rb") as file:
            return self.sign(file, timestamp=timestamp, message_id=message_id)

    def httpx_auth(self) -> httpx.Auth:
        """An ``httpx.Auth`` that signs each outgoing request body (sync and async clients).

        The body must be in memory (``content=bytes``, ``json=``, ``data=``): httpx streams other
        bodies and an auth flow cannot hash a stream without consuming it. For a large file, sign it
        with :meth:`sign_file` and send it with ``content=open(path, "rb")`` and those headers.
        """
        auth: httpx.Auth = _auth_class()(self)
        return auth


_AUTH_CLASS: type[Any] | None = None


def _auth_class() -> type[Any]:
    """Build the httpx.Auth subclass once, on first use, so hmacguard never imports httpx eagerly."""
    global _AUTH_CLASS
    if _AUTH_CLASS is not None:
        return _AUTH_CLASS
    try:
        import httpx
    except ImportError:
        raise ConfigurationError("httpx_auth needs httpx: pip install 'hmacguard[httpx]'") from None

    class HmacAuth(httpx.Auth):
        """Signs each request body with a :class:`Signer`."""

        def __init__(self, signer: Signer) -> None:
            self.signer = signer

        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            try:
                content = request.content
            except httpx.RequestNotRead:
                raise ConfigurationError(
                    "httpx_auth signs in-memory bodies only; sign a streamed body with "
                    "Signer.sign_file() and pass its headers"
                ) from None
            headers = self.signer.sign(content)
            for name, value in headers.items():
                if name.lower() in ("content-type", "user-agent"):
                    # The caller's own content type and user agent win over the provider's defaults.
                    request.headers.setdefault(name, value)
                else:
                    request.headers[name] = value
            yield request

    _AUTH_CLASS = HmacAuth
    return HmacAuth
