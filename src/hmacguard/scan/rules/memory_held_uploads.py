"""Server memory grows with the uploads held open at once: nothing bounds what all requests hold.

**How it is judged.** The held-uploads phase opens many connections at once (``--held-uploads``,
100), each declaring a body of at most the largest accepted size and just under 256 KiB
(``--held-size``, 250,000 bytes: the most a careful server keeps in memory before spooling to
disk), and sends all of each body but its last 64 bytes, a piece per connection per round, as slow
uploads arrive. With every upload still waiting, the server's RSS is read and compared with a
reading taken before the first connection. Reported when the growth is at least ``held_ratio`` of
the body bytes the still-open uploads had sent: the server keeps each upload's bytes in memory
until the body is whole, so a client who opens more connections makes it hold more, whatever the
per-request cap.

**Thresholds and why.** ``held_ratio`` 0.5 bytes of RSS per held body byte, judged when at least
``held_min_bytes`` 8 MiB was held (fewer held bytes are within a worker's own noise; then the rule
is listed as untested). Measured on the lab with 100 uploads of 249,936 bytes (23.8 MiB held):
PLACEHOLDER.

**What can make it wrong.** It needs server memory (``--pid``, ``--metrics`` or ``--launch``). A
process-wide bound larger than what the scan holds (hmacguard's default ``memory_budget`` is
64 MiB; the default scan holds about 24 MiB) is not reached, and the endpoint is reported as if it
had none: raise ``--held-uploads`` to go past it. A server that reads one request at a time
(gunicorn's sync workers) holds only what its workers read, the rest waiting in kernel buffers,
which RSS does not count: that is no finding, and correctly so, though a few hundred slow uploads
starve such a server of workers instead. A rate limit that counts uploads in flight answers most
of them 429 (``answered`` in the evidence), and one advertised too small for the phase skips it.
``--metrics`` readings lag by up to a poll interval; a server whose freed heap is still resident
from earlier requests can absorb the uploads without growing (the phase runs before the large
probes for that reason).
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.probes.base import size_text
from hmacguard.scan.rules.facts import ScanFacts, Thresholds, scan_finding
from hmacguard.scan.rules.registry import scan_rule


@scan_rule(
    id="memory-held-uploads",
    title="Server memory grows with uploads held at once",
    category=Category.DOS_POTENTIAL,
    severity=Severity.HIGH,
    cwe=(400, 770),
    remediation="Bound what all requests of a process hold in memory at once, not only each request: "
    "hmacguard's memory_budget (MEMORY_BUDGET) sends bodies to disk once the budget is spent; or put a "
    "buffering proxy in front (nginx's proxy_request_buffering on) so that only whole bodies reach "
    "the application.",
    phases=("held-uploads",),
    needs_memory=True,
)
def check(facts: ScanFacts, th: Thresholds) -> Finding | None:
    h = facts.held
    if h is None or h.held_bytes < th.held_min_bytes:
        return None
    per_byte = h.growth / h.held_bytes
    if per_byte < th.held_ratio:
        return None
    each = h.held_bytes // h.held
    return scan_finding(
        "memory-held-uploads", facts,
        f"server memory grew by {size_text(h.growth)} while {h.held} uploads were held open "
        f"({per_byte:.2f} bytes of RSS per held body byte)",
        f"{h.held} of {h.opened} uploads declaring {size_text(h.size)} each held open with "
        f"{size_text(each)} sent ({size_text(h.held_bytes)} in all): RSS {size_text(h.rss_before)} -> "
        f"{size_text(h.rss_held)}",
        {"connections_held": h.held, "connections_opened": h.opened, "declared_size": h.size,
         "bytes_per_connection": each, "held_bytes": h.held_bytes, "rss_growth": h.growth,
         "rss_growth_per_held_byte": round(per_byte, 3), "rss_peak": h.rss_peak,
         "answered": dict(h.answered), "variant": h.variant.label},
    )  # fmt: skip
