"""What the Python lab apps share: the secret, GitHub's signature format, and a capped body read."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import IO, Any

SECRET = os.environ.get("HMACGUARD_LAB_SECRET", "hmacguard-lab-secret").encode()
SIGNATURE_HEADER = "X-Hub-Signature-256"
#: Django's spelling of the same header in request.META.
SIGNATURE_META = "HTTP_X_HUB_SIGNATURE_256"


def github_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


#: The body cap of the receivers written correctly apart from their one flaw.
CAP = 1024 * 1024
_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The body passed :data:`CAP` (answer 413 and close the connection)."""


def verify_capped(stream: IO[bytes], content_length: int | None, signature: str) -> bool:
    """Whether ``signature`` is the body's GitHub signature, the body read in bounded chunks into the
    HMAC and never kept; BodyTooLarge past :data:`CAP` (before reading when the declared length
    says so). What the enforcement targets share, so that their one flaw is all the scan can find."""
    return hmac.compare_digest(
        mac_capped(stream, content_length, hmac.new(SECRET, digestmod=hashlib.sha256)), signature
    )


def mac_capped(stream: IO[bytes], content_length: int | None, mac: Any, prefix: str = "sha256=") -> str:
    """``prefix`` + the hex HMAC of the body, fed to ``mac`` in bounded chunks (see verify_capped)."""
    if content_length is not None and content_length > CAP:
        raise BodyTooLarge
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total > CAP:
            raise BodyTooLarge
        mac.update(chunk)
    return prefix + str(mac.hexdigest())


# A plain dict, on purpose: an OrderedDict's node per entry shows under `hmacguard leaks` as a line
# retaining memory per request in a correct target (the bound is deliberate), and the dict's slow
# eviction (guard/replay.py) only begins at _MAX_SEEN entries, which no lab run reaches.
_SEEN: dict[str, None] = {}
_MAX_SEEN = 100_000
#: A directory every worker of one lab server shares (``hmacguard lab`` creates it per server and
#: removes it when the server stops): gunicorn runs two workers, and a delivery remembered by one
#: worker alone would be processed again by the other -- a replay the target does not mean to have.
STATE_ENV = "HMACGUARD_LAB_STATE"


def first_delivery(signature: str) -> bool:
    """Remember a processed delivery by its signature; False if it was processed before. Shared by
    the server's workers through :data:`STATE_ENV` (one empty file per delivery, created atomically);
    without it, remembered in this process (bounded: the oldest are forgotten first). The
    enforcement targets and ``flask-streaming-capped`` de-duplicate unless that is their flaw."""
    state = os.environ.get(STATE_ENV)
    if state:
        name = hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()
        try:
            os.close(os.open(os.path.join(state, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True
    if signature in _SEEN:
        return False
    _SEEN[signature] = None
    if len(_SEEN) > _MAX_SEEN:
        del _SEEN[next(iter(_SEEN))]
    return True
