"""The size ladder: bodies of growing size, climbing until the server refuses one.

Sizes above a refusal are not sent (they would be refused too, and say nothing new); sizes above a
server error or a 429 are listed as untested, since the next rung might only hurt the target more.
A size already measured for the variant (by the baseline) is not sent again.

The baseline phase sends the smallest rung first, alone: it shows the server answers, gives each
variant the status a small accepted body gets (what a refusal status is judged against), and, when
the primary content type gets no usable answer, finds one the server does answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from hmacguard.scan.model import Measurement, Variant, Verdict
from hmacguard.scan.probes.base import Prober, size_text
from hmacguard.scan.summary import SIZE_PHASES
from hmacguard.scan.wire import Framing

__all__ = ["climb", "run_baseline", "run_ladder"]


def climb(prober: Prober, variant: Variant, sizes: Sequence[int]) -> list[Measurement]:
    out: list[Measurement] = []
    for i, size in enumerate(sizes):
        done = [
            m for m in prober.measurements
            if m.variant == variant and m.size == size and m.phase in SIZE_PHASES
        ]  # fmt: skip
        m = done[0] if done else prober.send(variant, size)
        if m is None:
            continue
        out.append(m)
        if m.verdict is Verdict.REFUSED:
            break
        if m.verdict in (Verdict.ERROR, Verdict.THROTTLED):
            why = "was throttled (429)" if m.verdict is Verdict.THROTTLED else "failed"
            for bigger in sizes[i + 1 :]:
                prober.skip(
                    f"{prober.phase}: {variant.label} {size_text(bigger)}",
                    f"the request of {size_text(size)} {why}; not climbing further",
                )
            break
    return out


def run_ladder(prober: Prober) -> list[Measurement]:
    """The primary variant (Content-Length, the scheme's content type) over the whole ladder."""
    return climb(prober, prober.primary, prober.budget.ladder)


def run_baseline(prober: Prober) -> list[Measurement]:
    """The smallest rung for the primary; if it is not accepted, for each other content type in turn
    until one is (the later phases then repeat requests in a type the server answers)."""
    size = prober.budget.ladder[0]
    out = []
    m = prober.send(prober.primary, size)
    if m is not None:
        out.append(m)
    if m is not None and m.verdict is Verdict.ACCEPTED:
        return out
    for content_type in prober.budget.content_types:
        variant = Variant(Framing.CONTENT_LENGTH, content_type)
        if variant == prober.primary:
            continue
        other = prober.send(variant, size)
        if other is not None:
            out.append(other)
            if other.verdict is Verdict.ACCEPTED:
                break
    return out
