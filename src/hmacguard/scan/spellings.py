"""Other spellings of a request target that many servers route to the same handler.

A guard that decides "is this path protected?" by comparing strings, while the router matches a
normalised path, lets an unsigned request in under another spelling: ``//webhook`` (Werkzeug merges
slashes), ``/%2Fwebhook`` (WSGI servers decode ``%2F`` into ``PATH_INFO``), ``/webhook/`` (Express
and Django's APPEND_SLASH tolerate a trailing slash), ``/WEBHOOK`` (Express routes case-insensitively),
``/webhook;x=1`` (servlet containers strip ``;`` parameters), ``/./webhook`` and
``/hmacguard/../webhook`` (servers and proxies that resolve dot segments). The scanner sends each one
as the raw request target (HTTP clients normalise paths before sending, which would hide exactly
these), and judges the answers against a random sibling path (:func:`sibling_target`), so a
catch-all route is not mistaken for a bypass.

Each spelling is built from the scanned target's path; its query, if any, follows unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Spelling", "path_spellings", "sibling_target"]


@dataclass(frozen=True)
class Spelling:
    name: str
    #: The request target, as it goes on the request line.
    target: str


def _split(target: str) -> tuple[str, str, str]:
    """(parent, last segment, query suffix) of a request target: ``/a/b?q`` -> ``/a``, ``b``, ``?q``."""
    path, mark, query = target.partition("?")
    parent, _, last = path.rstrip("/").rpartition("/")
    return parent, last, mark + query


def _encoded_first_letter(segment: str) -> str | None:
    first = segment[:1]
    if not first.isascii() or not first.isalnum():
        return None  # already an escape, or nothing to encode
    return f"%{ord(first):02X}{segment[1:]}"


def path_spellings(target: str) -> list[Spelling]:
    """The spellings of ``target`` to probe (each different from it), in a fixed order."""
    parent, last, query = _split(target)
    path = target.partition("?")[0]
    # The scanned path's own trailing slash stays on every spelling that changes its front.
    tail = "/" if path.endswith("/") and path != "/" else ""
    bare = f"{parent}/{last}"
    encoded = _encoded_first_letter(last)
    candidates = [
        ("double-slash", f"/{bare}{tail}"),
        ("inner-double-slash", f"{parent}//{last}{tail}" if parent else ""),
        ("trailing-slash", bare if tail else f"{bare}/"),
        ("encoded-slash", f"{parent}/%2F{last}{tail}"),
        ("encoded-trailing-slash", f"{bare.rstrip('/')}%2F" if last else ""),
        ("encoded-letter", f"{parent}/{encoded}{tail}" if encoded else ""),
        ("dot-segment", f"{parent}/./{last}{tail}"),
        ("dot-dot-segment", f"{parent}/hmacguard/../{last}{tail}"),
        ("encoded-dot-segment", f"{parent}/%2e/{last}{tail}"),
        ("trailing-dot-segment", f"{bare.rstrip('/')}/."),
        ("semicolon-parameter", f"{bare}{tail};hmacguard=1"),
        ("upper-case", f"{bare}{tail}".upper()),
    ]
    seen = {path}
    out = []
    for name, spelled in candidates:
        if spelled and spelled not in seen:
            seen.add(spelled)
            out.append(Spelling(name, spelled + query))
    return out


def sibling_target(target: str, token: str) -> str:
    """A path beside ``target`` that no application routes on purpose (``token``: a random name)."""
    parent, _, query = _split(target)
    return f"{parent}/hmacguard-{token}{query}"
