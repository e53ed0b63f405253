"""What the measurements so far say about each variant: largest accepted, smallest refused size.

Used twice: by the plan, so that later probes take their sizes from what earlier ones showed, and by
the analysis, which turns the same summaries into findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hmacguard.scan.model import LimitEstimate, Measurement, Refusal, Variant, Verdict

__all__ = ["SIZE_PHASES", "VariantSummary", "limit_estimates", "summarize", "summarize_all"]

#: Phases whose probes say something about a variant's size limit (gzip and expect probe other things).
SIZE_PHASES = frozenset({"baseline", "ladder", "chunked", "content-type", "bisect"})


@dataclass(frozen=True)
class VariantSummary:
    variant: Variant
    accepted: int | None
    refused: int | None
    refusal: Refusal | None
    #: Largest size sent whole that got no answer (a hang), if any.
    no_answer: int | None
    smallest_tried: int | None
    smallest_refused_at_bottom: bool
    errors: int
    probes: int

    @property
    def bounded(self) -> bool:
        return self.refused is not None

    @property
    def limits_size(self) -> bool:
        """A size limit (not a type filter): the smallest size tried was not refused."""
        return self.refused is not None and not self.smallest_refused_at_bottom

    @property
    def not_refused(self) -> int | None:
        """Largest size that was not refused (accepted, or taken whole with no answer)."""
        values = [v for v in (self.accepted, self.no_answer) if v is not None]
        return max(values) if values else None


def summarize(measurements: Iterable[Measurement], variant: Variant) -> VariantSummary:
    ms = [m for m in measurements if m.variant == variant and m.phase in SIZE_PHASES]
    accepted = [m.size for m in ms if m.verdict is Verdict.ACCEPTED]
    refused = sorted((m for m in ms if m.verdict is Verdict.REFUSED), key=lambda m: m.size)
    hung = [m.size for m in ms if m.verdict is Verdict.NO_ANSWER and m.exchange.body_complete]
    smallest = min((m.size for m in ms), default=None)
    return VariantSummary(
        variant=variant,
        accepted=max(accepted) if accepted else None,
        refused=refused[0].size if refused else None,
        refusal=refused[0].refusal if refused else None,
        no_answer=max(hung) if hung else None,
        smallest_tried=smallest,
        smallest_refused_at_bottom=bool(refused) and refused[0].size == smallest,
        errors=sum(1 for m in ms if m.verdict is Verdict.ERROR),
        probes=len(ms),
    )


def summarize_all(measurements: Sequence[Measurement]) -> list[VariantSummary]:
    """One summary per variant that had size probes, in the order variants were first probed."""
    seen: dict[Variant, None] = {}
    for m in measurements:
        if m.phase in SIZE_PHASES:
            seen.setdefault(m.variant)
    return [summarize(measurements, v) for v in seen]


def limit_estimates(measurements: Sequence[Measurement], precision: float) -> list[LimitEstimate]:
    out = []
    for s in summarize_all(measurements):
        low = s.not_refused
        precise = bool(s.refused and low and s.refused <= low * (1 + precision))
        bisections = sum(1 for m in measurements if m.variant == s.variant and m.phase == "bisect")
        out.append(LimitEstimate(s.variant, s.accepted, s.refused, s.refusal, precise, bisections))
    return out
