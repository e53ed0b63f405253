"""Limit discovery: bisect between the largest accepted and the smallest refused size.

Geometric bisection, until the two are within the budget's precision (10% by default), for every
variant whose refusal shows by status or by a cut connection. A refusal that only shows as "answered
before reading" (the server ignores the body) has no size to find. So that a limit changing between
runs shows as a changed number, each variant's bounds go into the report.
"""

from __future__ import annotations

import math

from hmacguard.scan.model import Refusal, Verdict
from hmacguard.scan.probes.base import Prober, size_text
from hmacguard.scan.summary import summarize_all

__all__ = ["run_bisect"]

_MAX_STEPS = 16


def run_bisect(prober: Prober) -> None:
    precision = prober.budget.bisect_precision
    for summary in summarize_all(prober.measurements):
        variant = summary.variant
        low, high = summary.not_refused, summary.refused
        if variant.gzip or variant.expect or not summary.limits_size or low is None or high is None:
            continue
        if low >= high:
            continue
        if summary.refusal is Refusal.EARLY:
            prober.notes.append(
                f"{variant.label}: the server answers before reading the body (first seen at "
                f"{size_text(high)}), so there is no size limit to bisect"
            )
            continue
        if summary.refusal is Refusal.CUT and high <= 2 * _uncertainty(prober, summary.variant):
            prober.notes.append(
                f"{variant.label}: cut off at {size_text(high)}, within the socket buffers' "
                "resolution; the limit is not bisected"
            )
            continue
        steps = 0
        while high > low * (1 + precision) and steps < _MAX_STEPS:
            middle = int(math.sqrt(low * high))
            if not low < middle < high:
                break
            m = prober.send(variant, middle)
            if m is None:
                break
            steps += 1
            if m.verdict is Verdict.ACCEPTED:
                low = middle
            elif m.verdict is Verdict.REFUSED:
                high = middle
            else:
                prober.notes.append(
                    f"{variant.label}: bisection stopped at {size_text(middle)} ({m.verdict.value})"
                )
                break


def _uncertainty(prober: Prober, variant: object) -> int:
    values = [m.exchange.uncertainty for m in prober.measurements if m.variant == variant]
    return max(values, default=0)
