"""Oversized bodies are refused, but only after the server has read (or drained) them.

**How it is judged.** For each variant (gzip aside), its largest body refused by status: the answer
came only after at least 90% of the body was on the wire. The largest such probe is reported, with
the range of bytes the server had read when it answered.

**Thresholds and why.** Only bodies of at least 1 MiB and four times the socket-buffer uncertainty
count: near a limit, a body that fits in the buffers between scanner and server is "sent" before the
server reads a byte, whatever the server does. 90% of the wire size leaves room for the last buffer.

**What can make it wrong.** The uncertainty is our send buffer plus the kernel's default receive
buffer (about 256 KiB on loopback); a server that read for a while can have grown its receive buffer
past that, so a server that stopped reading late but not at the end can still be reported. A proxy
that buffers the whole body before the application refuses it is reported too, rightly.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.config import MiB
from hmacguard.scan.model import Measurement, Refusal, Variant, Verdict
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, probe_brief, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="late-rejection",
    title="Oversized bodies are refused only after being read",
    category=Category.DOS_POTENTIAL,
    severity=Severity.MEDIUM,
    cwe=(400,),
    remediation="Refuse on Content-Length before reading, and for chunked bodies at the cap; answer 413 "
    "with Connection: close instead of draining the rest.",
    phases=("ladder",),
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    # Judged on each variant's largest refused body: near a limit, a body that fits in the socket
    # buffers is "sent" before the server reads it, whatever the server does.
    largest: dict[Variant, Measurement] = {}
    for m in facts.measurements:
        if m.variant.gzip or m.verdict is not Verdict.REFUSED or m.refusal is not Refusal.STATUS:
            continue
        if m.variant not in largest or m.size > largest[m.variant].size:
            largest[m.variant] = m
    late = []
    for m in largest.values():
        ex = m.exchange
        if ex.sent_at_response is None or m.size < max(4 * ex.uncertainty, MiB):
            continue
        if ex.sent_at_response >= 0.9 * m.wire_size:
            late.append(m)
    if not late:
        return None
    worst = max(late, key=lambda m: m.size)
    accepted = worst.accepted_before_answer or (0, 0)
    return scan_finding(
        "late-rejection", facts,
        f"refused a {size_text(worst.size)} body with {worst.exchange.status} only after reading "
        f"at least {size_text(accepted[0])} of it",
        f"{worst.exchange.status} after {worst.exchange.total_s:.2f}s, {size_text(accepted[0])}"
        f"–{size_text(accepted[1])} read first ({worst.variant.label})",
        {"probes": [probe_brief(m) for m in late], "uncertainty_bytes": worst.exchange.uncertainty},
    )  # fmt: skip
