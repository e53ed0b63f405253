"""Server memory grows with the body: the body (or copies of it) is held whole.

**How it is judged.** For each variant, among accepted probes with a memory reading: the peak RSS
growth of the server's process tree at the largest body of at least the minimum size, divided by that
body's size (for a gzip body, its inflated size). The variant with the highest ratio at or above the
threshold is reported, with the slope fitted over the ladder (bodies of 1 MiB and more) as context.

**Thresholds and why.** ``amplification`` 0.5 bytes of RSS per body byte, at a body of at least
``amplification_min_size`` 32 MiB. Smaller bodies cannot tell: a gunicorn worker's first request grows
it by up to 16 MiB whatever the size, and Node frees streamed chunks only when its garbage collector
runs (a 16 MiB body streamed through Express grew RSS by 16 MiB, a 100 MiB one by 4 MiB). A server
that streams grows by its chunk size, far below half the body.

**What can make it wrong.** It needs server memory (``--pid``, ``--metrics`` or ``--launch``) and a
budget that reaches 32 MiB; otherwise it is listed as untested. RSS is what the allocator keeps, not
what the application holds: a server whose heap was already raised by an earlier large request can
absorb a body without growing (the retention phase runs first for that reason). ``--metrics`` polls
every 50 ms, so a peak shorter than that can be missed.
"""

from __future__ import annotations

from hmacguard._stats import slope
from hmacguard.findings import Category, EvidenceValue, Finding, Severity
from hmacguard.scan.config import MiB
from hmacguard.scan.model import Verdict
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="memory-amplification",
    title="Server memory grows with body size",
    category=Category.DOS_POTENTIAL,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Stream the body into the HMAC in chunks; never hold the whole body (or copies of it).",
    phases=("ladder",),
    needs_memory=True,
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    best: tuple[float, str, dict[str, EvidenceValue]] | None = None
    variants = dict.fromkeys(m.variant for m in facts.measurements)
    for variant in variants:
        points = [
            (m.size, m.rss_delta) for m in facts.measurements
            if m.variant == variant and m.verdict is Verdict.ACCEPTED and m.rss_delta is not None
        ]  # fmt: skip
        big = [(s, d) for s, d in points if s >= th.amplification_min_size]
        if not big:
            continue
        # Decided at the largest body: a worker's first-request warm-up and a garbage collector's lag
        # are megabytes, which only a body far larger than them can tell apart from buffering.
        size, delta = max(big)
        ratio = delta / size
        fit_points = [(s, d) for s, d in points if s >= MiB] or points
        fitted = slope([float(s) for s, _ in fit_points], [float(d) for _, d in fit_points])
        if ratio >= th.amplification and (best is None or ratio > best[0]):
            values: dict[str, EvidenceValue] = {
                "variant": variant.label, "rss_per_body_byte": round(ratio, 3),
                "fitted_slope": round(fitted, 3), "largest_body": size, "rss_growth_at_largest": delta,
                "points": [[s, d] for s, d in sorted(points)],
            }  # fmt: skip
            how = "a gzip body inflated to" if variant.gzip else "a body of"
            best = (ratio, f"peak RSS grew by {size_text(delta)} for {how} {size_text(size)}", values)
    if best is None:
        return None
    ratio, summary, values = best
    return scan_finding(
        "memory-amplification",
        facts,
        f"server memory grows with the body: {ratio:.2f} bytes of RSS per body byte",
        summary + f" ({values['variant']}); slope over the ladder {values['fitted_slope']}",
        values,
    )
