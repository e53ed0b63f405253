"""Retention: the same request repeated after a warm-up, RSS read after each round.

A server that keeps something per request grows by about that much per request, round after round.
One that only reaches its allocator's high-water mark grows during the warm-up and then stops. So
the report gives the growth per request fitted over all rounds and over the second half alone; the
analysis calls it a leak only when the second half keeps growing too, and when the median round
grew as well (a garbage-collected runtime's RSS rises and falls in steps and sawtooths).

Retention runs early, before any large probe, on purpose: a server that has just handled a 100 MiB
body keeps tens of MiB of freed heap resident (glibc raises its trim threshold after freeing a large
block), and retained bodies would fill that silently instead of growing RSS. On a server that has
only seen small requests, RSS growth per request is close to what it keeps. Only the baseline, the
enforcement probes and the held uploads come first; a server that kept the held uploads in memory
(reported as memory-held-uploads) may have freed heap left that hides the first rounds of a leak.
The other order was worse: retention's 1 MiB bodies raised the Node targets' heap enough to absorb
the held uploads whole.

Its size is the budget's ``retention_size`` (1 MiB), a quarter or a sixteenth of it if the server
refuses that, in the content type the baseline found answered.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable

from hmacguard._stats import slope
from hmacguard.scan.model import RetentionResult, Variant, Verdict
from hmacguard.scan.observe import MemoryObserver
from hmacguard.scan.probes.base import Prober, size_text
from hmacguard.scan.probes.ratelimit import advertised_allowance
from hmacguard.scan.summary import summarize

__all__ = ["accepted_size", "answering_variant", "memory_phase", "room_for", "run_retention"]

#: Requests the size probes (ladders, framings, bisection) need, kept for them under a rate limit.
_SIZE_PROBES = 40


def answering_variant(prober: Prober) -> tuple[Variant, int] | None:
    """A variant the server answered and the largest size it accepted: the primary if possible."""
    candidates = [prober.primary]
    candidates += [m.variant for m in prober.measurements if m.variant not in candidates]
    for variant in candidates:
        if variant.gzip or variant.expect:
            continue
        accepted = summarize(prober.measurements, variant).accepted
        if accepted is not None:
            return variant, accepted
    return None


def memory_phase(
    prober: Prober, phase: str, count: int, *, clients: int = 1, hint: Callable[[int], str] | None = None
) -> tuple[MemoryObserver, Variant, int] | None:
    """What a phase that watches memory over ``count`` requests starts from: the observer, a variant
    the server answered and the largest size it accepted. None, and ``phase`` listed as untested,
    without memory observation, without an accepted body, or when :func:`room_for` says no.
    ``clients``: the requests are spread over that many source addresses of their own (held
    uploads' ``--held-sources``), so each needs room for its share only, and none is taken from
    what the size probes need. ``hint``: what to add to a skip for want of room (see
    :func:`room_for`)."""
    if prober.observer is None:
        prober.skip(phase, "no memory observation (give --pid, --metrics or --launch)")
        return None
    chosen = answering_variant(prober)
    if chosen is None:
        prober.skip(phase, f"the server accepted no body to send in {phase}")
        return None
    if not room_for(prober, -(-count // clients), phase, spread=clients > 1, hint=hint):
        return None
    return prober.observer, *chosen


def run_retention(prober: Prober) -> RetentionResult | None:
    budget = prober.budget
    count = budget.retention_warmup + budget.retention_rounds * budget.retention_per_round
    start = memory_phase(prober, "retention", count)
    if start is None:
        return None
    observer, variant, _ = start
    size = accepted_size(prober, variant, budget.retention_size, "retention")
    if size is None:
        return None
    if count * size > prober.spendable_bytes:
        prober.skip(
            "retention",
            f"needs {count} x {size_text(size)}, {size_text(max(0, prober.spendable_bytes))} left",
        )
        return None
    statuses: list[int] = []

    def one() -> bool:
        m = prober.send(variant, size, observe=False, record=False)
        if m is None or m.verdict is not Verdict.ACCEPTED:
            got = "skipped" if m is None else m.verdict.value
            prober.skip("retention", f"a repeated request of {size_text(size)} was {got}")
            return False
        statuses.append(m.exchange.status or 0)
        return True

    for _ in range(budget.retention_warmup):
        if not one():
            return None
    rss: list[int] = []
    first = observer.settled_rss()
    if first is None:
        prober.skip("retention", "server memory could not be read")
        return None
    rss.append(first)
    for r in range(budget.retention_rounds):
        prober.emit(f"retention round {r + 1}/{budget.retention_rounds}")
        for _ in range(budget.retention_per_round):
            if not one():
                return None
        value = observer.settled_rss()
        if value is None:
            prober.skip("retention", "server memory could not be read")
            return None
        rss.append(value)
    xs = [i * budget.retention_per_round for i in range(len(rss))]
    half = len(rss) // 2
    return RetentionResult(
        variant=variant,
        size=size,
        warmup=budget.retention_warmup,
        per_round=budget.retention_per_round,
        rss=tuple(rss),
        bytes_per_request=slope(xs, rss),
        late_bytes_per_request=slope(xs[half:], rss[half:]),
        median_bytes_per_request=statistics.median(
            (b - a) / budget.retention_per_round for a, b in itertools.pairwise(rss)
        ),
        answered=len(statuses),
        statuses=tuple(statuses),
    )


def room_for(
    prober: Prober, count: int, phase: str, *, spread: bool = False, hint: Callable[[int], str] | None = None
) -> bool:
    """Whether ``count`` more requests leave the size probes their share of any rate limit the
    target advertised; if not, ``phase`` is listed as untested (saying why) and False returned.
    ``spread``: ``count`` is what each of several other source addresses sends -- it must fit
    one client's allowance (what this client has left of it: no more than a fresh one has), and
    the size probes, sent from this client, keep theirs. ``hint``: given the allowance, what to add
    to the reason when there is no room (how the user could make some)."""
    answered = [*prober.side_exchanges, *(m.exchange for m in prober.measurements)]
    if prober.enforcement is not None:  # the latest answers: what remains of a quota after them
        answered += [p.exchange for p in prober.enforcement.probes]
    allowance = advertised_allowance(answered)
    if allowance is None or allowance >= count + (0 if spread else _SIZE_PROBES):
        return True
    if spread:
        why = f"the {count} requests of {phase} from each source address would pass it"
    else:
        why = f"the {count} requests of {phase} would use it up before the size probes"
    more = "" if hint is None else hint(allowance)
    prober.skip(phase, f"the target advertises a rate limit of {allowance} requests; {why}{more}")
    return False


def accepted_size(prober: Prober, variant: Variant, full: int, phase: str) -> int | None:
    """``full``, or a quarter or a sixteenth of it if the server refuses that, each tried with one
    request; None (and ``phase`` listed as untested) when it refuses them all."""
    for size in dict.fromkeys(max(min(full, 4096), full // d) for d in (1, 4, 16)):
        m = prober.send(variant, size)
        if m is None:
            return None
        if m.verdict is Verdict.ACCEPTED:
            return size
    prober.skip(phase, f"the server refused {variant.label} bodies down to {size_text(full // 16)}")
    return None
