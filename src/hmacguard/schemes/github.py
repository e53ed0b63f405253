"""GitHub: ``X-Hub-Signature-256: sha256=<hex>`` over the body; the secret as UTF-8.

Source: GitHub's "Validating webhook deliveries". GitHub signs no timestamp, and its
``X-GitHub-Delivery`` id is not covered by the signature. When signing, the legacy
``X-Hub-Signature: sha1=<hex>`` is sent too, as GitHub does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hmacguard._mypyc import mypyc_attr
from hmacguard.errors import SignatureMalformed
from hmacguard.http import EnvironHeaders
from hmacguard.schemes.base import Scheme, SignatureClaim, header_value, lowered, make_claim, unhex

__all__ = ["GitHubScheme"]


@mypyc_attr(allow_interpreted_subclasses=True)
class GitHubScheme(Scheme):
    name = "github"
    has_message_id = True
    header = "X-Hub-Signature-256"

    def signed_prefix(self, *, timestamp: int | None, message_id: str | None) -> bytes:
        return b""

    def parse(self, headers: Mapping[str, str]) -> SignatureClaim:
        h = lowered(headers)
        delivery = h.get("x-github-delivery")
        claim = _sent_form(h.get("x-hub-signature-256"), delivery)
        if claim is not None:
            return claim
        value = header_value(h, self.header)
        kind, sep, digest = value.partition("=")
        if not sep or kind.strip().lower() != "sha256":
            raise SignatureMalformed(f"{self.header} must look like sha256=<hex>")
        sig = unhex(digest.strip(), self.digest_size, self.header)
        return SignatureClaim(self.algorithm, (sig,), b"", None, delivery.strip() if delivery else None)

    def parse_environ(self, environ: Mapping[str, Any]) -> SignatureClaim:
        # The form GitHub sends, straight from the environ (see Scheme.parse_environ); anything
        # else through parse(), as the general path reads it.
        claim = _sent_form(environ.get("HTTP_X_HUB_SIGNATURE_256"), environ.get("HTTP_X_GITHUB_DELIVERY"))
        return self.parse(EnvironHeaders(environ)) if claim is None else claim

    def signing_algorithms(self) -> tuple[str, ...]:
        return ("sha256", "sha1")

    def render(
        self, digests: Mapping[str, bytes], *, timestamp: int | None, message_id: str | None
    ) -> dict[str, str]:
        out = {self.header: "sha256=" + digests["sha256"].hex()}
        if "sha1" in digests:
            out["X-Hub-Signature"] = "sha1=" + digests["sha1"].hex()
        return out

    def provider_headers(self, *, message_id: str | None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/hmacguard",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": message_id or self.new_message_id(),
            "X-GitHub-Hook-ID": "1",
        }


def _sent_form(value: object, delivery: object) -> SignatureClaim | None:
    """The claim of a request in the form GitHub sends (``sha256=`` and 64 hex digits, the delivery
    id text or absent), parsed in one step; ``None`` for anything else, which takes the careful path."""
    if type(value) is str and len(value) == 71 and value.startswith("sha256="):
        if delivery is not None and type(delivery) is not str:
            return None
        try:
            sig = bytes.fromhex(value[7:])
        except ValueError:
            return None
        # fromhex skips whitespace between pairs: only 32 bytes mean 64 hex digits.
        if len(sig) == 32:
            return make_claim(("sha256", (sig,), b"", None, delivery.strip() if delivery else None))
    return None
