"""Which request paths are protected, decided on every spelling a router could route -- failing closed.

The matching model (the guard's trust boundary, stated the way werkzeug's ProxyFix states its trust
model). A protected request is one the framework *could* route to a protected view, so the guard
protects a request when **any** of these spellings of its path matches a protected path:

- the path the application routes on: WSGI ``PATH_INFO`` (relative to ``SCRIPT_NAME``); ASGI
  ``scope["path"]`` with ``root_path`` removed when it starts with it (Starlette and Django route
  on that), and ``scope["path"]`` itself;
- the full path: ``SCRIPT_NAME + PATH_INFO``, ``root_path + path`` (so a path configured with its
  mount prefix still matches);

each of them taken

- percent-decoded once more, and again, up to a fixed point (a server decodes ``%2F`` once; the
  guard also considers what a second decoder would see);
- with backslashes read as slashes, and with ``;parameters`` removed from every segment;
- with repeated slashes merged (Werkzeug strips leading ones before routing, ``//webhook`` routes
  to ``/webhook``), the trailing slash removed (``strict_slashes=False``, ``redirect_slashes``),
  and dot segments both resolved and kept (a ``<path:...>`` converter routes ``/hooks/../x`` into
  ``/hooks/``);
- compared case-insensitively (servers and routers that fold case).

Protected paths are normalised the same way: ``"/webhook"`` protects ``/webhook``, ``/webhook/``,
``//webhook``, ``/%2Fwebhook``, ``/%77ebhook``, ``/WEBHOOK``, ``/x/../webhook`` and
``/webhook;v=1``; ``"/hooks/*"`` protects ``/hooks`` and everything below it.

The union over-protects on purpose: an unprotected route that only *looks* like a protected one gets
verified (and an unsigned request to it refused). Under-protecting would be a bypass.

A path the guard cannot interpret -- a NUL or other control character once decoded, percent-encoding
nested deeper than :data:`MAX_DECODES`, longer than :data:`MAX_PATH` -- is refused with 400
(:class:`~hmacguard.errors.PathInvalid`), never passed through.

Standard library only, no I/O; the integrations call :meth:`ProtectedPaths.matches` per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from hmacguard.errors import ConfigurationError, PathInvalid

__all__ = ["MAX_DECODES", "MAX_PATH", "ProtectedPaths", "spellings", "wsgi_path"]

#: Percent-decoding rounds considered; a path still changing after them is refused.
MAX_DECODES = 3
#: Longest path interpreted (servers refuse longer request lines long before this).
MAX_PATH = 8192

# A path that every normalisation leaves as it is (but for case): no percent sign, semicolon,
# backslash or control character, no empty, "." or ".." segment, no trailing slash.
_PLAIN = re.compile(r"(?:/(?!\.\.?(?:/|$))[^/%;\\\x00-\x1f\x7f]+)+|/")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLASHES = re.compile(r"/{2,}")
_PARAMS = re.compile(r";[^/]*")


def _merge_slashes(path: str) -> str:
    """Repeated slashes merged, a leading slash ensured, the trailing slash removed (``/`` stays)."""
    path = _SLASHES.sub("/", "/" + path)
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def _resolve_dots(path: str) -> str:
    """RFC 3986 5.2.4 on a merged path: ``.`` segments dropped, ``..`` removes its parent."""
    out: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return "/" + "/".join(out)


def spellings(path: str) -> frozenset[str]:
    """Every canonical (case-folded) form a router could reach from ``path``; see the module docs.

    Raises :class:`~hmacguard.errors.PathInvalid` for a path the guard cannot interpret.
    """
    if len(path) > MAX_PATH:
        raise PathInvalid("the request path is too long to interpret")
    if _PLAIN.fullmatch(path):
        return frozenset((path.casefold(),))
    decoded = [path]
    for _ in range(MAX_DECODES):
        step = unquote(decoded[-1], errors="replace")
        if step == decoded[-1]:
            break
        decoded.append(step)
    else:
        if unquote(decoded[-1], errors="replace") != decoded[-1]:
            raise PathInvalid("the request path is percent-encoded too many times over")
    out: set[str] = set()
    for text in decoded:
        if _CONTROL.search(text):
            raise PathInvalid("the request path contains control characters")
        for slashed in {text, text.replace("\\", "/")}:
            for bare in {slashed, _PARAMS.sub("", slashed)}:
                merged = _merge_slashes(bare)
                out.add(merged.casefold())
                out.add(_resolve_dots(merged).casefold())
    return frozenset(out)


def wsgi_path(raw: str) -> str:
    """A WSGI path (bytes carried in a latin-1 ``str``, PEP 3333) as the text routers route on.

    Invalid UTF-8 becomes U+FFFD, as Werkzeug and Django decode it.
    """
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # not a PEP 3333 string: a server that already decoded it
        return raw


class ProtectedPaths:
    """The configured protected paths, canonical, and the test of a request's path against them.

    ``paths``: exact paths (``"/webhook"``) and prefixes ending in ``*`` (``"/hooks/*"``), each
    starting with ``/``.
    """

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, paths: Iterable[str]) -> None:
        if isinstance(paths, str):
            paths = [paths]
        exact: set[str] = set()
        prefixes: list[tuple[str, bool]] = []
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"protected paths start with '/': {path!r}")
            if path.endswith("*"):
                stem = path[:-1]
                # "/hooks/*" covers "/hooks" itself and what lies below it; "/hook*" any continuation.
                boundary = stem.endswith("/")
                base = _resolve_dots(_merge_slashes(stem)).casefold()
                prefixes.append((base, boundary and base != "/"))
            else:
                exact.add(_resolve_dots(_merge_slashes(path)).casefold())
        if not exact and not prefixes:
            raise ConfigurationError("paths is empty: nothing would be protected (use None for all)")
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def _hit(self, canonical: str) -> bool:
        if canonical in self._exact:
            return True
        for base, boundary in self._prefixes:
            if boundary:
                if canonical == base or canonical.startswith(base + "/"):
                    return True
            elif canonical.startswith(base):
                return True
        return False

    def matches(self, *paths: str) -> bool:
        """Whether any spelling of any of ``paths`` is protected; raises PathInvalid (see above)."""
        for path in paths:
            for canonical in spellings(path):
                if self._hit(canonical):
                    return True
        return False
