"""An application line keeps memory after every request (or call).

**How it is judged.** ``hmacguard leaks`` sends requests in-process in rounds and snapshots
tracemalloc after each. Every application line's surviving bytes form a series; a least-squares slope
over the last third of the rounds says whether it is still gaining memory, the slope over the first
half whether it gained any at all. A line whose tail keeps climbing (most of its last rounds gain) is
*growing*: a leak, high severity from 1 KiB per request, medium from 256 bytes, low below. A line that
climbed and then held (an LRU of bodies) is a *plateau*: reported at info severity, not a leak.

**Thresholds and why.** ``--min-bytes`` (32 bytes per request by default): below it a line's growth is
noise (a dict resize, an interned name). A tail slope under a tenth of the head slope means the growth
has stopped.

**What can make it wrong.** Only what the requests reach is measured: a wrong ``--path``, method or
signature keeps the app at its front door (the report warns when no request succeeded). Memory kept by
the interpreter's own caches, and growth outside application frames, is set aside and shown apart.
"""

from __future__ import annotations

from hmacguard.findings import Category, Rule, Severity, register_rule

__all__ = ["RULE"]

#: The leak finder's rule id.
RULE = register_rule(
    Rule(
        id="line-retains-memory",
        title="An application line keeps memory after each request",
        category=Category.MEMORY_LEAK,
        severity=Severity.HIGH,
        cwe=(401,),
        remediation="Keep bodies and signatures request-scoped: no module-level lists or caches holding "
        "them, no attributes on long-lived objects; key caches by a hash of the body.",
        doc=__doc__.strip() if __doc__ else "",
        source="leaks",
    )
).id
