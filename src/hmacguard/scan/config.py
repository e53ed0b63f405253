"""What to scan and how much the scan may spend: :class:`ScanTarget` and :class:`Budget`.

Both are validated when built, so a bad URL, an unknown scheme or a nonsensical budget fails before a
single byte is sent (``ConfigurationError`` / ``TargetError``, exit code 2 on the command line).

Only loopback targets are scanned unless ``allow_remote`` is set: the host name is resolved once here
and the scanner connects to those addresses only, so a name cannot resolve to loopback for the check
and elsewhere for the traffic.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.schemes import Scheme, get_scheme

__all__ = [
    "DEFAULT_LADDER", "MAX_HELD_SOURCES", "MAX_PROBE_BODY", "Budget", "GiB", "KiB", "MiB", "ParsedURL",
    "ScanTarget", "resolve_host",
]  # fmt: skip

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: The size ladder of the issue and of the seed (1 KiB as the quiet baseline, then 1, 10, 100 MiB).
DEFAULT_LADDER: tuple[int, ...] = (1 * KiB, 1 * MiB, 10 * MiB, 100 * MiB)
#: Body shapes probed by the content-type variants, the scheme's own type first at run time.
DEFAULT_CONTENT_TYPES: tuple[str, ...] = (
    "application/json",
    "text/plain; charset=utf-8",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
)
_METHODS = ("POST", "PUT", "PATCH")
#: Most ``--held-sources``: 127.0.0.2 to 127.0.0.251.
MAX_HELD_SOURCES = 250
#: Largest ``--probe-body``: the enforcement probes send small bodies, a real event's size.
MAX_PROBE_BODY = 64 * KiB
_FORBIDDEN_HEADERS = {
    # The wire layer owns framing: letting a user override these would make every measurement lie.
    "host", "content-length", "transfer-encoding", "connection", "expect", "content-encoding",
}  # fmt: skip


@dataclass(frozen=True)
class ScanTarget:
    """The endpoint to probe and how to sign for it.

    ``secret`` absent: probes carry a well-formed but wrong signature (an attacker's view, before
    authentication). ``secret`` given: probes are correctly signed, to reach the code after verification.
    ``content_type`` defaults to what the scheme's provider sends. The ``generic_*`` options configure the
    ``generic`` scheme only. ``probe_body`` replaces the enforcement probes' test event (``--probe-body``:
    an event the receiver accepts, at most :data:`MAX_PROBE_BODY` bytes).
    """

    url: str
    scheme: str = "github"
    secret: str | None = None
    method: str = "POST"
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    generic_header: str = "X-Signature"
    generic_prefix: str = ""
    generic_encoding: str = "hex"
    generic_algorithm: str = "sha256"
    allow_remote: bool = False
    #: Skip TLS certificate verification (self-signed loopback services).
    insecure: bool = False
    probe_body: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        method = self.method.upper()
        if method not in _METHODS:
            raise ConfigurationError(f"method must be one of {', '.join(_METHODS)}, not {self.method!r}")
        object.__setattr__(self, "method", method)
        for name, value in self.headers.items():
            if not name or any(c in name for c in ": \r\n\t") or any(c in value for c in "\r\n"):
                raise ConfigurationError(f"not a valid header: {name!r}: {value!r}")
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ConfigurationError(f"header {name!r} is set by the scanner itself")
        if self.secret is not None and not self.secret:
            raise ConfigurationError("the secret is empty")
        if self.probe_body is not None and not 0 < len(self.probe_body) <= MAX_PROBE_BODY:
            raise ConfigurationError(
                f"--probe-body must hold 1 to {MAX_PROBE_BODY:,} bytes (the enforcement probes are "
                f"small), not {len(self.probe_body):,}"
            )
        if self.content_type is not None and (
            "/" not in self.content_type or any(c in self.content_type for c in "\r\n")
        ):
            raise ConfigurationError(f"not a content type: {self.content_type!r}")
        generic_set = (self.generic_header, self.generic_prefix, self.generic_encoding,
                       self.generic_algorithm) != ("X-Signature", "", "hex", "sha256")  # fmt: skip
        if generic_set and self.scheme != "generic":
            raise ConfigurationError(
                f"--header/--prefix/--encoding/--algorithm apply to the generic scheme, not {self.scheme!r}"
            )
        self.signature_scheme()  # raises ConfigurationError for an unknown scheme or bad options
        if self.secret is not None:
            self.signature_scheme().key(self.secret)  # e.g. standard-webhooks wants base64
        self.parsed()

    def signature_scheme(self) -> Scheme:
        if self.scheme == "generic":
            return get_scheme(
                "generic",
                header=self.generic_header,
                prefix=self.generic_prefix,
                encoding=self.generic_encoding,
                algorithm=self.generic_algorithm,
            )
        return get_scheme(self.scheme)

    @property
    def signed(self) -> bool:
        return self.secret is not None

    @property
    def effective_content_type(self) -> str:
        return self.content_type or self.signature_scheme().content_type

    def parsed(self) -> ParsedURL:
        """Split and check the URL (without resolving the host)."""
        return ParsedURL.parse(self.url)

    def resolve(self) -> tuple[str, ...]:
        """The addresses to connect to; TargetError if none, or if one is remote without permission."""
        parsed = self.parsed()
        return resolve_host(parsed.host, parsed.port, allow_remote=self.allow_remote)


def resolve_host(host: str, port: int, *, allow_remote: bool) -> tuple[str, ...]:
    """Resolve ``host`` once; every address must be loopback unless ``allow_remote``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve {host!r}: {exc.strerror}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetError(f"{host!r} resolves to no address")
    if not allow_remote:
        remote = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
        if remote:
            raise TargetError(
                f"{host} resolves to non-loopback {remote[0]}: scan only what you are "
                "authorised to, and pass --allow-remote to scan it"
            )
    return addresses


@dataclass(frozen=True)
class ParsedURL:
    tls: bool
    host: str
    port: int
    #: Path and query, as sent on the request line.
    path: str
    #: The Host header value.
    authority: str

    @classmethod
    def parse(cls, url: str) -> ParsedURL:
        if not url or any(c.isspace() for c in url):
            raise TargetError(f"malformed URL {url!r}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetError(f"malformed URL {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise TargetError(f"URL must start with http:// or https://, not {url!r}")
        if not parts.hostname:
            raise TargetError(f"URL has no host: {url!r}")
        if parts.username or parts.password:
            raise TargetError("credentials in the URL are not supported; pass headers instead")
        if parts.fragment:
            raise TargetError(f"URL has a fragment, which is never sent: {url!r}")
        tls = parts.scheme == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname
        default = 443 if tls else 80
        real_port = port if port is not None else default
        host_text = f"[{host}]" if ":" in host else host
        authority = host_text if real_port == default else f"{host_text}:{real_port}"
        return cls(tls, host, real_port, path, authority)


@dataclass(frozen=True)
class Budget:
    """How much the scan may spend, and the shape of its probes.

    ``bytes`` counts body bytes put on the wire (a gzip probe costs its compressed size); ``seconds`` is
    the wall-clock limit for the whole scan; ``request_timeout`` is how long one request may go without
    progress (nothing sent, nothing received) before it counts as unanswered. The ladder is cut at
    ``max_size``. Probes that do not fit are skipped and listed in the report as untested.
    """

    bytes: int = 1 * GiB
    seconds: float = 60.0
    request_timeout: float = 5.0
    max_size: int = 100 * MiB
    ladder: tuple[int, ...] = DEFAULT_LADDER
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    burst_requests: int = 20
    burst_concurrency: int = 4
    #: The burst's body size: the largest size the server accepted, at most this.
    burst_size: int = 1 * MiB
    #: Retention: warm-up requests, then rounds x requests per round, each ``retention_size`` bytes.
    #: 64 MiB measured after 16 MiB of warm-up: enough for a leak to stand out of a garbage
    #: collector's sawtooth (Node's RSS swings by tens of MiB on its own).
    retention_size: int = 1 * MiB
    retention_warmup: int = 16
    retention_rounds: int = 8
    retention_per_round: int = 8
    #: Held uploads: this many connections at once, each declaring a body of ``held_size`` bytes
    #: (at most the largest size the server accepted) and sending all of it but a few bytes. The
    #: default size is just below 256 KiB, where careful servers start spooling bodies to disk
    #: (hmacguard's guard among them): the most a body can make such a server hold in memory.
    held_uploads: int = 400
    held_size: int = 250_000
    #: Loopback source addresses the held uploads are spread over (127.0.0.2 on), as from that many
    #: clients: a rate limit per client then bounds each one's share, not the whole phase -- how a
    #: guard behind a per-client limit is proved against many clients at once. 1: this host's own
    #: address, as every other phase. More than 1 needs a target that answers on 127.0.0.0/8.
    held_sources: int = 1
    #: Bisect each limit until the largest accepted and smallest refused size are within this ratio.
    bisect_precision: float = 0.10
    #: How long to wait for ``100 Continue`` before sending the body anyway (as curl does).
    expect_wait: float = 1.0
    #: Our send buffer: small, so "bytes sent when the answer came" is close to "bytes the server read".
    send_buffer: int = 64 * KiB

    def __post_init__(self) -> None:
        if self.bytes < 4 * KiB:
            raise ConfigurationError("--budget-bytes must be at least 4 KiB")
        if not 0 < self.seconds <= 24 * 3600:
            raise ConfigurationError("--budget-seconds must be between 0 and 86400")
        if not 0 < self.request_timeout <= 600:
            raise ConfigurationError("the request timeout must be between 0 and 600 seconds")
        if self.max_size < 1:
            raise ConfigurationError("--max-size must be positive")
        ladder = tuple(sorted({s for s in self.ladder if 0 < s <= self.max_size}))
        if any(s <= 0 for s in self.ladder) or not ladder:
            raise ConfigurationError("the size ladder needs at least one positive size within --max-size")
        object.__setattr__(self, "ladder", ladder)
        if not self.content_types or any("/" not in ct for ct in self.content_types):
            raise ConfigurationError("content types must look like type/subtype")
        if not 1 <= self.burst_requests <= 10_000 or not 1 <= self.burst_concurrency <= 256:
            raise ConfigurationError("burst: 1..10000 requests, 1..256 at a time")
        if self.burst_concurrency > self.burst_requests:
            raise ConfigurationError("burst concurrency cannot exceed the number of burst requests")
        if self.burst_size < 1 or self.retention_size < 1:
            raise ConfigurationError("burst and retention sizes must be positive")
        if self.retention_rounds < 3 or self.retention_per_round < 1 or self.retention_warmup < 0:
            raise ConfigurationError("retention needs at least 3 rounds of at least 1 request")
        if not 2 <= self.held_uploads <= 1000:
            # At most 1000: each is a file descriptor on both sides, within the usual limit of 1024.
            raise ConfigurationError("--held-uploads must be between 2 and 1000")
        if not 1 <= self.held_sources <= MAX_HELD_SOURCES:
            raise ConfigurationError(
                f"--held-sources must be between 1 and {MAX_HELD_SOURCES} (127.0.0.2-127.0.0.251)"
            )
        if not 4 * KiB <= self.held_size <= 16 * MiB:
            raise ConfigurationError("--held-size must be between 4 KiB and 16 MiB")
        if not 0.01 <= self.bisect_precision <= 1.0:
            raise ConfigurationError("bisection precision must be between 0.01 and 1")
        if not 0 <= self.expect_wait <= 30:
            raise ConfigurationError("expect wait must be between 0 and 30 seconds")
        if not 4 * KiB <= self.send_buffer <= 16 * MiB:
            raise ConfigurationError("send buffer must be between 4 KiB and 16 MiB")

    @property
    def held_addresses(self) -> int:
        """Source addresses the held uploads come from: ``held_sources``, at most one an upload."""
        return min(self.held_sources, self.held_uploads)

    @property
    def top(self) -> int:
        """The largest ladder size."""
        return self.ladder[-1]
