"""What the Python lab apps share: the secret and GitHub's signature format."""

from __future__ import annotations

import hashlib
import hmac
import os

SECRET = os.environ.get("HMACGUARD_LAB_SECRET", "hmacguard-lab-secret").encode()
SIGNATURE_HEADER = "X-Hub-Signature-256"
#: Django's spelling of the same header in request.META.
SIGNATURE_META = "HTTP_X_HUB_SIGNATURE_256"


def github_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
