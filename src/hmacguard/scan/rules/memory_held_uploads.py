"""Server memory grows with the uploads held open at once: nothing bounds what all requests hold.

**How it is judged.** The held-uploads phase opens many connections at once (``--held-uploads``,
400), each declaring a body of at most the largest accepted size and just under 256 KiB
(``--held-size``, 250,000 bytes: the most a careful server keeps in memory before it spools to
disk), and sends all of each body but its last 64 bytes, a piece per connection per round, as slow
uploads arrive. The server's RSS is read once the first piece is on every connection, three quarters
of the way on, and with every body all but finished. Reported when the growth from the first reading to
the last is at least ``held_ratio`` of the bytes the still-open uploads sent between them -- the
server keeps what each upload has sent until the body is whole, so a client that opens more
connections makes it hold more, whatever the per-request cap -- *and* the last quarter of the sending
grew it at that rate too: a process-wide bound that the uploads passed (a memory budget that
filled) shows as a flat last quarter, however much it grew before. What a server spends per
connection (its objects, read buffers, a temporary file) is spent by the first reading and not
counted: that is bounded by how many connections it accepts, a limit of another kind.

**Thresholds and why.** ``held_ratio`` 0.5 bytes of RSS per byte, judged when the uploads sent at
least ``held_min_bytes`` 8 MiB after their first piece (less is within a worker's own noise; the
rule is then listed as untested), and the last quarter when it carried at least a quarter of that
(else the whole alone is judged, e.g. a sending cut short). Measured on the lab with 400 uploads:
receivers that keep what arrives 1.02-1.27 (``fastapi-body``, ``fastapi-capped-buffer``,
``express-json-only``; ``express-concat``'s strings the most); the guard with a 1 MiB memory budget
0.07-0.09 (up to 0.39 with both cores busy: a worker that falls behind reads more at a time, and
uvicorn's h11 keeps each connection's read buffer at its largest), the same guard without a budget
1.02; Express streaming each chunk into the HMAC 0.26-0.38; gunicorn's sync workers 0.00-0.01. Half
a byte per byte lies between. The last quarter (about 23 MiB): keepers 1.06-1.09, the guard with its
default 64 MiB budget 0.09 (0.73 in all: it filled, some 8 MiB before the late reading), with a
1 MiB budget 0.00. The default of 400
uploads is for Node: V8 collects dead Buffers only once external memory has grown by about 64 MiB,
and until then a receiver that streams and drops each chunk looks like one that keeps it (100
uploads, 22 MiB after the first piece: 1.08). The rounds carry at most 3.2 MiB in all (64 MiB/s),
so at 400 uploads a piece is 8 KiB: at 16 KiB a loaded uvicorn worker fell behind, its h11 read
buffers grew, and the budgeted guard once read 0.88.

**What can make it wrong.** It needs server memory (``--pid``, ``--metrics`` or ``--launch``). A
process-wide bound is seen only when the uploads pass it before their last quarter: one above about
three quarters of what the scan sends (some 70 MiB at the defaults) is reported as none -- raise
``--held-uploads`` (1000 sends about 240 MiB). A server that reads one
request at a time (gunicorn's sync workers) holds only what its workers read, the rest waiting in
kernel buffers that RSS does not count: no finding, correctly, though a few hundred slow uploads
starve such a server of workers instead. The server's own read buffers are counted: trickled this
slowly they stay small, but an attacker who sends faster can make them hold more than the scan
shows, which only a buffering proxy prevents. A rate limit that counts uploads in flight answers
most of them 429 (``answered`` in the evidence); one advertised too small for the phase skips it --
on loopback, ``--held-sources`` spreads the uploads over as many addresses, so that a limit per
client bounds each one's share (the lab's guarded targets are measured so).
A garbage-collected runtime whose collector waits past what the scan sends looks as if it kept
everything. ``--metrics`` readings lag by up to a poll interval.
"""

from __future__ import annotations

from hmacguard.findings import Category, Finding, Severity
from hmacguard.scan.model import HeldResult
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
    if h is None or too_little_to_judge(h, th):
        return None
    per_byte = h.growth_per_added_byte
    if per_byte < th.held_ratio:
        return None
    # A bound the uploads passed: the growth stopped before the end. Judged when the last quarter
    # carried enough to tell (a sending cut short may leave no late reading, or too little after it).
    judged_tail = h.tail_bytes > 0 and h.tail_bytes >= th.held_min_bytes // 4  # (a minimum under 4: 0)
    tail_per_byte = h.tail_growth / h.tail_bytes if judged_tail else None
    if tail_per_byte is not None and tail_per_byte < th.held_ratio:
        return None
    each = h.held_bytes // h.held
    below = _ruled_out_below(h, tail_per_byte)
    return scan_finding(
        "memory-held-uploads", facts,
        f"server memory grew by {size_text(h.growth)} while {h.held} uploads were held open "
        f"({per_byte:.2f} bytes of RSS per byte they sent after their first piece)",
        f"{h.held} of {h.opened} uploads declaring {h.size:,} bytes each held open, all but "
        f"{h.size - each:,} sent ({size_text(h.held_bytes)} in all): RSS {size_text(h.rss_before)} -> "
        f"{size_text(h.rss_first)} with the first piece on every connection -> {size_text(h.rss_held)}; "
        f"{_unseen_bound(below, tail_per_byte)}",
        {"connections_held": h.held, "connections_opened": h.opened, "declared_size": h.size,
         "bytes_per_connection": each, "held_bytes": h.held_bytes, "rss_growth": h.growth,
         "rss_growth_per_held_byte": round(h.growth / h.held_bytes, 3),
         "bytes_after_first_piece": h.added_bytes, "rss_growth_after_first_piece": h.added_growth,
         "rss_growth_per_byte_after_first_piece": round(per_byte, 3), "rss_peak": h.rss_peak,
         "rss_growth_per_byte_last_quarter": None if tail_per_byte is None else round(tail_per_byte, 3),
         "answered": dict(h.answered), "no_bound_passed_below_bytes": below, "sources": h.sources,
         "variant": h.variant.label},
    )  # fmt: skip


def _ruled_out_below(held: HeldResult, tail_per_byte: float | None) -> int:
    """The body bytes below which a process-wide bound would have shown: one the uploads passed by
    the reading the growth is judged from (the late one when the last quarter was judged, else the
    first) leaves the growth after it flat. Body bytes, not RSS: a bound counts what the bodies
    hold, and RSS grows by more than was sent (copies, per-connection costs) -- a bound above what
    the uploads had sent was never reached, whatever the RSS did."""
    if tail_per_byte is not None and held.late_bytes is not None:
        return held.late_bytes
    return held.first_bytes


def _unseen_bound(below: int, tail_per_byte: float | None) -> str:
    """What the finding cannot rule out: a process-wide bound above ``below`` body bytes (a black
    box sees a bound only once it is passed: the growth then stops)."""
    how = "kept growing through the last quarter" if tail_per_byte is not None else "grew"
    return (
        f"it {how}, so no process-wide bound was passed below {size_text(below)} of bodies sent; a "
        "higher one cannot be seen with this many uploads (raise --held-uploads to look further)"
    )


def too_little_to_judge(held: HeldResult, th: Thresholds) -> bool:
    """Whether the uploads that stayed open sent too little after their first piece to be judged
    (the rule is then listed as untested). Nothing at all, even with a minimum of 0: every upload
    answered or closed."""
    return held.added_bytes <= 0 or held.added_bytes < th.held_min_bytes
