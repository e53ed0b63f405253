"""Burst: a bounded burst of concurrent large-body requests, against a quiet baseline.

First a few sequential requests give the quiet latency; then ``burst_requests`` go out
``burst_concurrency`` at a time, at the largest size the server accepted (capped by the budget's
``burst_size``). What comes back says whether anything throttles (429, Retry-After, RateLimit or
X-RateLimit headers) and whether the service degrades (5xx, resets, timeouts, latency growth).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

from hmacguard.scan.model import BurstResult
from hmacguard.scan.observe import MemoryWatch
from hmacguard.scan.probes.base import Prober, ScanStopped, size_text
from hmacguard.scan.probes.ratelimit import rate_limit_headers
from hmacguard.scan.probes.retention import answering_variant
from hmacguard.scan.wire import Exchange, Outcome, exchange

__all__ = ["run_burst"]

_QUIET = 3


def run_burst(prober: Prober) -> BurstResult | None:
    budget = prober.budget
    chosen = answering_variant(prober)
    if chosen is None:
        prober.skip("burst", "the server accepted no body to send in a burst")
        return None
    variant, accepted = chosen
    size = min(budget.burst_size, accepted)
    wire = prober.body(variant, size).wire_length
    total = budget.burst_requests + _QUIET
    if total * wire > prober.spendable_bytes:
        prober.skip(
            "burst", f"needs {total} x {size_text(wire)}, {size_text(max(0, prober.spendable_bytes))} left"
        )
        return None
    quiet = []
    for _ in range(_QUIET):
        m = prober.send(variant, size, observe=False, record=False)
        if m is not None and m.exchange.responded:
            quiet.append(m.exchange.total_s)
    prober.emit(f"burst: {budget.burst_requests} x {size_text(size)}, {budget.burst_concurrency} at a time")
    # Signing happens here, before the clock starts: the burst measures the server, not our HMAC.
    requests = [prober.request(variant, size) for _ in range(budget.burst_requests)]
    deadline = prober.deadline

    def fire(i: int) -> Exchange:
        return exchange(prober.endpoint, requests[i], timeout=budget.request_timeout,
                        deadline=deadline, send_buffer=budget.send_buffer)  # fmt: skip

    watch_cm = prober.observer.watch() if prober.observer else nullcontext(MemoryWatch())
    started = time.monotonic()
    with watch_cm as watch, ThreadPoolExecutor(budget.burst_concurrency) as pool:
        results = list(pool.map(fire, range(budget.burst_requests)))
    duration = time.monotonic() - started
    prober.requests += len(results)
    prober.bytes_sent += sum(ex.body_sent for ex in results)
    outcomes: Counter[str] = Counter(
        str(ex.status) if ex.status is not None else ex.outcome.value for ex in results
    )
    headers = sorted({h for ex in results for h in rate_limit_headers(ex)})
    retry_after = next((v for ex in results if (v := ex.header("retry-after"))), None)
    errors = sum(
        1 for ex in results
        if (ex.status is not None and ex.status >= 500)
        or ex.outcome in (Outcome.RESET, Outcome.CLOSED, Outcome.PROTOCOL_ERROR, Outcome.CONNECT_FAILED)
    )  # fmt: skip
    no_answer = sum(1 for ex in results if ex.outcome is Outcome.TIMEOUT)
    result = BurstResult(
        variant=variant,
        size=size,
        requests=len(results),
        concurrency=budget.burst_concurrency,
        quiet_latencies=tuple(quiet),
        latencies=tuple(ex.total_s for ex in results if ex.responded),
        statuses=dict(sorted(outcomes.items())),
        throttled=sum(1 for ex in results if ex.status == 429),
        errors=errors,
        no_answer=no_answer,
        rate_limit_headers=tuple(headers),
        retry_after=retry_after,
        duration_s=duration,
        rss_peak=watch.peak,
        rss_before=watch.baseline,
    )
    prober.burst = result
    if (errors or no_answer) and not prober.alive():
        prober.unavailable_reason = (
            f"after a burst of {len(results)} x {size_text(size)} ({errors} errors, {no_answer} "
            "unanswered) the target answered no request"
        )
        raise ScanStopped(prober.unavailable_reason, unavailable=True)
    return result
