"""HTTP types the guard and the scanner share: a lower-cased header map and the request head.

Standard library only (and the guard's errors); nothing here reads a socket.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hmacguard.errors import BadRequest

__all__ = ["EnvironHeaders", "LowerCaseHeaders", "RequestHead", "lowered"]


class LowerCaseHeaders(dict[str, str]):
    """A header map whose names are already lower case, so parsing need not copy it again.

    The ASGI integration builds one per request while reading the server's headers anyway.
    """


#: Header name -> WSGI environ key ("x-hub-signature-256" -> "HTTP_X_HUB_SIGNATURE_256"). Bounded,
#: since clients choose header names; CGI keeps these two out of HTTP_*.
_ENVIRON_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_MAX_ENVIRON_KEYS = 2048


class EnvironHeaders(Mapping[str, str]):
    """A WSGI environ seen as headers with lower-case names, without copying it.

    A request's headers are looked up a handful of times (length, coding, signature, id), so a view
    that translates each name costs less than building a dict of every header. ``content-length``
    is the server's ``CONTENT_LENGTH``, an empty one being none (CGI's way of saying so); with none,
    it is ``"0"`` when the server does not promise to end ``wsgi.input`` (PEP 3333: such a server
    cannot pass a chunked body, and reading could block forever). A value that is not text (which
    PEP 3333 forbids) raises :class:`~hmacguard.errors.BadRequest` (400).
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = _ENVIRON_KEYS.get(name)
        if key is None:
            key = "HTTP_" + name.upper().replace("-", "_")
            if len(_ENVIRON_KEYS) < _MAX_ENVIRON_KEYS:
                _ENVIRON_KEYS[name] = key
        return key

    def get(self, name: str, default: Any = None) -> Any:
        key = _ENVIRON_KEYS.get(name)
        value = self._environ.get(self._key(name) if key is None else key)
        if value:
            if not isinstance(value, str):  # PEP 3333 wants text: 400, never a crash further on
                raise _not_text(name)
            return value
        if name == "content-length":
            return default if self._environ.get("wsgi.input_terminated") else "0"
        if value is None:
            return default
        if not isinstance(value, str):  # 0, b"", ...
            raise _not_text(name)
        return value

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        for key in self._environ:
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
                if name not in ("content-type", "content-length"):
                    yield name
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _not_text(name: str) -> Exception:
    """The 400 for a header a WSGI server (or a middleware) put in the environ as something other
    than text: what PEP 3333 forbids, and what the guard cannot read (the compiled build checks
    every header it reads is text, tests/guard/test_review_compiled.py)."""
    return BadRequest(f"the {name} header is not text")


_LOWERED = (LowerCaseHeaders, EnvironHeaders)


def lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` with lower-case names (no copy when they already are)."""
    if type(headers) in _LOWERED:
        return headers
    return {k.lower(): v for k, v in headers.items()}


@dataclass(slots=True)
class RequestHead:
    """What the guard knows before reading the body. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: Mapping[str, str]
    #: The socket peer's address as the server reports it (see the trust model in guard/ratelimit.py).
    peer: str | None = None
