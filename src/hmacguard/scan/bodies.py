"""Probe bodies, generated on the fly: the scanner never holds a probe body in memory.

A :class:`BodySpec` is a shape (JSON, text, octet-stream, form), a size and optionally gzip. Its
:meth:`~BodySpec.chunks` yields the exact same bytes every time it is called: one 64 KiB block is built
once per shape and re-yielded as read-only views, with a small prefix and suffix that make the body
well-formed for its content type (``{"hmacguard_probe":"aaa…"}``, ``hmacguard_probe=aaa…``). Being
deterministic is what lets a signed probe hash the body in a first pass and send it in a second.

Bodies contain no newline, on purpose: a receiver that iterates a stream by lines (the seed's Flask
"fix") then sees one line as long as the body, which is what an attacker would send.

Each probe's body carries a short ASCII ``tag`` right after the prefix (inside the JSON string, the
form value, the text): receivers with replay protection keyed on the body digest would otherwise
refuse every repeat of a correctly signed probe as a replay.

A gzip body is the same content compressed at level 9: a 100 MiB JSON body is about 100 KiB on the
wire. Its wire length needs one compression pass; it is computed once per (shape, size) and cached.

The enforcement probes send something else: :func:`probe_event`, a small test event that says what it
is, since a receiver that lets one in hands it to its application.
"""

from __future__ import annotations

import enum
import functools
import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["BLOCK", "PROBE_EVENT_TYPE", "BodySpec", "Shape", "probe_event", "shape_for"]

#: Size of the views the generator yields (and of the one block kept per shape).
BLOCK = 64 * 1024


class Shape(str, enum.Enum):
    JSON = "json"
    TEXT = "text"
    OCTET = "octet"
    FORM = "form"


def shape_for(content_type: str) -> Shape:
    """The body shape that is valid for ``content_type``."""
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == "application/json" or ct.endswith("+json"):
        return Shape.JSON
    if ct == "application/x-www-form-urlencoded":
        return Shape.FORM
    if ct.startswith("text/"):
        return Shape.TEXT
    return Shape.OCTET


_FRAME: dict[Shape, tuple[bytes, bytes]] = {
    Shape.JSON: (b'{"hmacguard_probe":"', b'"}'),
    Shape.TEXT: (b"hmacguard-probe:", b""),
    Shape.OCTET: (b"", b""),
    Shape.FORM: (b"hmacguard_probe=", b""),
}


@functools.cache
def _block(shape: Shape) -> bytes:
    if shape is Shape.OCTET:
        # Incompressible but reproducible: a fixed-seed stream, not os.urandom; no newline (see above).
        noise = random.Random(0x686D6163).randbytes(BLOCK)  # noqa: S311 (not for security)
        return noise.replace(b"\n", b"\x0b")
    return b"a" * BLOCK


def _tiny(shape: Shape, size: int) -> bytes:
    """A body shorter than the shape's frame, still valid where possible."""
    if shape is Shape.JSON:
        return (b"{}" + b" " * size)[:size] if size >= 2 else b"0"[:size]
    return (b"x" * size) if shape is not Shape.FORM else (b"h=" + b"a" * size)[:size]


@dataclass(frozen=True)
class BodySpec:
    """A body of ``size`` bytes (before Content-Encoding) in ``shape``, optionally gzip-encoded."""

    shape: Shape
    size: int
    gzip: bool = False
    #: ASCII letters and digits placed after the prefix, to make each probe's body unique.
    tag: str = ""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("body size must not be negative")
        if not (self.tag.isascii() and (self.tag.isalnum() or not self.tag)):
            raise ValueError("a body tag is ASCII letters and digits")

    def raw_chunks(self) -> Iterator[bytes | memoryview]:
        """The body's bytes before any Content-Encoding, in pieces of at most :data:`BLOCK`."""
        prefix, suffix = _FRAME[self.shape]
        tag = self.tag.encode("ascii")
        if self.size < len(prefix) + len(tag) + len(suffix):
            if self.size:
                yield _tiny(self.shape, self.size)
            return
        if prefix or tag:
            yield prefix + tag
        remaining = self.size - len(prefix) - len(tag) - len(suffix)
        view = memoryview(_block(self.shape))
        while remaining > 0:
            n = min(remaining, BLOCK)
            yield view[:n]
            remaining -= n
        if suffix:
            yield suffix

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The bytes as sent on the wire (compressed when ``gzip``)."""
        if not self.gzip:
            yield from self.raw_chunks()
            return
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
        for piece in self.raw_chunks():
            out = compressor.compress(piece)
            if out:
                yield out
        yield compressor.flush()

    @property
    def wire_length(self) -> int:
        return _gzip_length(self.shape, self.size, self.tag) if self.gzip else self.size

    @property
    def content_encoding(self) -> str | None:
        return "gzip" if self.gzip else None


@functools.lru_cache(maxsize=64)
def _gzip_length(shape: Shape, size: int, tag: str) -> int:
    return sum(len(c) for c in BodySpec(shape, size, gzip=True, tag=tag).chunks())


#: The ``type`` of the enforcement probes' test event.
PROBE_EVENT_TYPE = "hmacguard.scan.probe"
_PROBE_NOTE = (
    "a test event sent by hmacguard scan to check that this endpoint enforces its signature; "
    "it describes nothing and asks for nothing: ignore it"
)


def probe_event(content_type: str, tag: str) -> bytes:
    """The enforcement probes' body: a harmless test event, marked as one, unique by ``tag``.

    JSON (and as text or octet-stream)::

        {"hmacguard_probe": true, "type": "hmacguard.scan.probe", "id": "<tag>", "note": "a test event ..."}

    form-encoded: the same fields (``hmacguard_probe=true&type=...``). The id makes every probe's body
    unique, so that a receiver de-duplicating on the body's digest judges each on its own.
    """
    if shape_for(content_type) is Shape.FORM:
        form = {"hmacguard_probe": "true", "type": PROBE_EVENT_TYPE, "id": tag, "note": _PROBE_NOTE}
        return urlencode(form).encode()
    fields = {"hmacguard_probe": True, "type": PROBE_EVENT_TYPE, "id": tag, "note": _PROBE_NOTE}
    return json.dumps(fields, separators=(",", ":")).encode()
