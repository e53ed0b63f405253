"""Framing variants: the same bodies chunked, under other content types, behind ``Expect:
100-continue``, and gzip-encoded.

Their sizes come from what the primary ladder showed: content types start at the primary's smallest
refused size (that is where a limit one parser applies would be bypassed by another), or, when the
primary refused nothing, go up to the size the analysis calls abnormally large.
"""

from __future__ import annotations

from hmacguard.scan.model import Measurement, Variant
from hmacguard.scan.probes.base import Prober
from hmacguard.scan.probes.ladder import climb
from hmacguard.scan.summary import summarize
from hmacguard.scan.wire import Framing

__all__ = ["content_type_sizes", "run_chunked", "run_content_types", "run_expect", "run_gzip"]


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _rung_at_least(prober: Prober, size: int) -> int:
    return next((s for s in prober.budget.ladder if s >= size), prober.budget.top)


def run_chunked(prober: Prober) -> list[Measurement]:
    """The whole ladder with ``Transfer-Encoding: chunked``: no Content-Length for a limit to trust."""
    variant = Variant(Framing.CHUNKED, prober.primary.content_type)
    return climb(prober, variant, prober.budget.ladder)


def content_type_sizes(prober: Prober, large: int) -> list[int]:
    ladder = prober.budget.ladder
    primary = summarize(prober.measurements, prober.primary)
    if primary.limits_size and primary.refused is not None:
        # Where the primary's limit lies: its largest accepted size and its smallest refused one,
        # then up the ladder (a parser-specific limit lets another type climb past it).
        refused = primary.refused
        sizes = [ladder[0], refused, *(s for s in ladder if s > refused)]
        if primary.accepted is not None:
            sizes.append(primary.accepted)
    else:
        sizes = [ladder[0], _rung_at_least(prober, large)]
    return sorted(set(sizes))


def run_content_types(prober: Prober, large: int) -> list[Measurement]:
    """Every other content type, at the sizes that can show a limit one body parser applies alone."""
    out: list[Measurement] = []
    primary_type = _media_type(prober.primary.content_type)
    sizes = content_type_sizes(prober, large)
    seen = {primary_type}
    for content_type in prober.budget.content_types:
        if _media_type(content_type) in seen:
            continue
        seen.add(_media_type(content_type))
        out += climb(prober, Variant(Framing.CONTENT_LENGTH, content_type), sizes)
    return out


def run_expect(prober: Prober, large: int) -> Measurement | None:
    """``Expect: 100-continue`` at a size the server should refuse: does it say so before the body?"""
    primary = summarize(prober.measurements, prober.primary)
    size = primary.refused if primary.limits_size and primary.refused else _rung_at_least(prober, large)
    variant = Variant(Framing.CONTENT_LENGTH, prober.primary.content_type, expect=True)
    return prober.send(variant, size)


def run_gzip(prober: Prober) -> Measurement | None:
    """A gzip body the size of the ladder's top once inflated, about a thousandth of it on the wire."""
    variant = Variant(Framing.CONTENT_LENGTH, prober.primary.content_type, gzip=True)
    return prober.send(variant, prober.budget.top)
