"""tracemalloc snapshots between rounds of requests, and which line *keeps* what survives them.

The measurement, step by step:

1. Warm up with tracing off: first requests fill the interpreter's and the framework's caches (compiled
   regular expressions, ``typing`` and ``logging`` caches, URL resolvers, imports done lazily). One of
   them runs under a profiler to learn how deep the app's stack goes, which sets the traceback limit.
2. Freeze the heap (``gc.freeze()``: everything alive is old) and start tracemalloc afresh, so that
   "traced" means "allocated after warm-up". A full ``gc.collect()`` before every snapshot, and another
   after it, empties the interpreter's freelists, so a freed tuple parked on a freelist never passes for
   a retained one, and a tuple recycled from tracemalloc's own untraced ones never passes for an old one.
3. After each round, snapshot and sum the surviving blocks per allocation traceback.
4. After the last round, find *who keeps* the survivors (keepers.py): old containers holding new objects,
   what they hold by allocation traceback, and -- watched over a few more requests -- the application
   line that stores into each. ``CACHE[key] = (body, sig)`` is reported there, with the body's bytes,
   although the body itself was allocated deep inside the framework. What the interpreter's own caches
   hold is set aside.
5. Each traceback's blocks are grouped under the line that keeps them (step 4), or else the innermost
   application frame that allocated them; traces whose innermost frame is in an interpreter cache module
   or that only the harness made are dropped; growth in library code alone is summed as "outside".

The result is a per-line series of (requests so far, bytes, blocks) that analysis.py fits.
"""

from __future__ import annotations

import contextvars
import gc
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TypeVar

from hmacguard.errors import ConfigurationError
from hmacguard.leaks.frames import FrameKind, FramePolicy, Site
from hmacguard.leaks.harness import Workload
from hmacguard.leaks.keepers import find_keepers, watch_stores

__all__ = ["Measurement", "SiteSeries", "measure"]

#: Frames kept per traceback when the depth is not measured (a Django view sits ~25 below the harness).
DEFAULT_FRAMES = 48
#: Bounds on the measured depth: tracemalloc's cost grows with every frame it records.
_MIN_FRAMES, _MAX_FRAMES = 16, 256
#: Headroom over the profiled request: other requests may take deeper paths (errors, lazy setup).
_DEPTH_MARGIN = 4

Frames = tuple[tuple[str, int], ...]
T = TypeVar("T")


@dataclass
class SiteSeries:
    """Bytes and blocks surviving at one line after each round."""

    site: Site
    #: "stored" (a frontier: the line that put it into a long-lived object) or "allocated".
    how: str
    bytes: list[int]
    blocks: list[int]
    #: For stored sites: application lines that allocated what the store keeps, with bytes at the end.
    allocated_at: Counter[Site] = field(default_factory=Counter)


@dataclass
class Measurement:
    unit: str
    warmup: int
    #: Requests (or calls) done when each snapshot was taken; the first entry is the baseline (0).
    requests: list[int]
    sites: dict[Site, SiteSeries]
    #: Surviving bytes per round with no application frame (framework or library code).
    outside: list[int]
    outside_top: list[tuple[Site, int]]
    run_seconds: float
    total_seconds: float
    workload: dict[str, int]


def _round_sizes(requests: int, rounds: int) -> list[int]:
    base, extra = divmod(requests, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def _innermost_first(tb: tracemalloc.Traceback) -> Frames:
    return tuple((f.filename, f.lineno) for f in reversed(tb))


def _shallow(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread and wait for it.

    While tracing, every allocation records its stack, and CPython works out each frame's line number
    by scanning the code's line table: under pytest (thirty frames of large functions above us) one
    allocation costs tens of microseconds. The snapshot and the heap scan allocate a lot and touch
    no application state, so they run where the stack is four frames deep.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed back to the caller's thread, re-raised there
            error.append(exc)

    # A daemon: if Ctrl-C reaches the caller while a request is stuck, the process can still exit.
    worker = threading.Thread(target=target, name="hmacguard-leaks", daemon=True)
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


def _snapshot() -> dict[tracemalloc.Traceback, tuple[int, int]]:
    """Surviving bytes and blocks per traceback, right after a full collection."""
    gc.collect()
    # No filter_traces(): it matches every trace in Python. Our own allocations (tracemalloc.py,
    # this module) are told apart per distinct traceback in _place() instead, which is far cheaper.
    snap = tracemalloc.take_snapshot()
    table = {s.traceback: (s.size, s.count) for s in snap.statistics("traceback")}
    del snap
    # tracemalloc builds the snapshot without tracing its own allocations; the tuples it freed now sit
    # on the interpreter's freelists, and the next request would reuse them untraced -- a tuple the app
    # stores would pass for an old object. A second full collection empties the freelists again.
    gc.collect()
    return table


def measure(
    workload: Workload,
    *,
    requests: int = 200,
    rounds: int = 8,
    warmup: int | None = None,
    policy: FramePolicy | None = None,
    frames: int | None = None,
    watch: int = 3,
    thread: bool = False,
) -> Measurement:
    """Run ``workload`` for ``warmup`` + ``requests`` units and measure what each line keeps.

    ``thread=True`` runs everything -- every request included -- on one fresh thread, as a server's
    worker would. tracemalloc records up to ``frames`` frames per allocation and pays for each by
    scanning its code's line table; on a test runner's deep stack an allocation near the top of the
    app's stack records thirty frames of pytest and costs five times more. Context variables are
    copied over; thread-locals are not (an app that needs the caller's thread-local state -- a test
    database connection, say -- wants ``thread=False``).
    """
    if rounds < 2:
        raise ConfigurationError("at least 2 rounds are needed to tell growth from a one-off")
    if requests < rounds:
        raise ConfigurationError(f"{requests} requests cannot fill {rounds} rounds")
    if frames is not None and not 1 <= frames <= 1000:
        raise ConfigurationError("traceback depth must be between 1 and 1000 frames")
    policy = policy or FramePolicy()
    warmup = max(3, requests // 20) if warmup is None else warmup
    if thread:
        context = contextvars.copy_context()
        return _shallow(
            lambda: context.run(
                _measure, workload, requests, rounds, warmup, policy, frames, watch, on_worker=True
            )
        )
    return _measure(workload, requests, rounds, warmup, policy, frames, watch, on_worker=False)


def _measure(
    workload: Workload,
    requests: int,
    rounds: int,
    warmup: int,
    policy: FramePolicy,
    frames: int | None,
    watch: int,
    *,
    on_worker: bool,
) -> Measurement:
    # On the caller's thread, the analysis still moves to a shallow one (see _shallow).
    def analysis(fn: Callable[[], T]) -> T:
        return fn() if on_worker else _shallow(fn)

    started = time.perf_counter()
    run_seconds = 0.0

    t0 = time.perf_counter()
    remaining = warmup
    if frames is None:
        # The depth probe is one of the warm-up requests.
        frames = _depth_below(workload) if warmup else DEFAULT_FRAMES
        remaining = max(0, warmup - 1)
    if remaining:
        workload.run(remaining)
    run_seconds += time.perf_counter() - t0

    was_tracing = tracemalloc.is_tracing()
    previous_limit = tracemalloc.get_traceback_limit()
    was_frozen = gc.get_freeze_count() > 0
    gc.collect()
    # Everything alive now is old by definition: frozen, it costs the two full collections per round
    # nothing (a test runner's heap is large). Freelists are still emptied by each full collection.
    gc.freeze()
    if was_tracing:
        tracemalloc.stop()  # old traces would make warm-up allocations look new
    tracemalloc.start(frames)
    try:
        done = [0]
        tables = [analysis(_snapshot)]
        for size in _round_sizes(requests, rounds):
            t0 = time.perf_counter()
            workload.run(size)
            run_seconds += time.perf_counter() - t0
            done.append(done[-1] + size)
            tables.append(analysis(_snapshot))
        # The heap scan must see the old objects: gc.get_objects() skips the frozen ones.
        gc.unfreeze()
        keepers = analysis(lambda: find_keepers(policy, ignore=_owned(workload)))
    finally:
        tracemalloc.stop()
        gc.unfreeze()
        if was_frozen:
            gc.freeze()  # a pre-fork server froze its heap; leave it frozen (a superset, now)
        if was_tracing:
            tracemalloc.start(previous_limit)
    stores = watch_stores(workload.run, keepers.biggest(), policy, requests=watch)
    stored, allocated_at = keepers.resolve(stores)
    del keepers

    sites, outside, outside_top = _group(tables, stored, allocated_at, policy)
    return Measurement(
        unit=workload.unit,
        warmup=warmup,
        requests=done,
        sites=sites,
        outside=outside,
        outside_top=outside_top,
        run_seconds=run_seconds,
        total_seconds=time.perf_counter() - started,
        workload=workload.summary(),
    )


def _depth_below(workload: Workload) -> int:
    """Run one request under a profiler and return how deep the app's stack goes below the harness.

    tracemalloc records the innermost N frames of every allocation and pays for each one; frames above
    the harness (a test runner's forty, say) are useless to us. Recording just as many as the app
    needs keeps the application's frames and halves the cost on a shallow app.
    """
    depth = deepest = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal depth, deepest
        if event == "call":
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        workload.run(1)
    finally:
        sys.setprofile(previous)
    # The count includes the harness's two frames at the bottom, where the application search stops.
    return max(_MIN_FRAMES, min(_MAX_FRAMES, deepest + _DEPTH_MARGIN))


def _owned(workload: Workload) -> list[object]:
    """The harness's own long-lived state: its counters gain new ints, which is not the app's doing."""
    state = getattr(workload, "__dict__", {})
    return [workload, state, *state.values()]


def _group(
    tables: Sequence[dict[tracemalloc.Traceback, tuple[int, int]]],
    stored: dict[tracemalloc.Traceback, Site | None],
    allocated_at: dict[Site, Counter[Site]],
    policy: FramePolicy,
) -> tuple[dict[Site, SiteSeries], list[int], list[tuple[Site, int]]]:
    n = len(tables)
    sites: dict[Site, SiteSeries] = {}
    outside = [0] * n
    outside_by_site: Counter[Site] = Counter()
    placed: dict[tracemalloc.Traceback, tuple[str, Site | None]] = {}
    for r, table in enumerate(tables):
        for tb, (size, count) in table.items():
            where = placed.get(tb)
            if where is None:
                where = placed[tb] = _place(tb, stored, policy)
            how, site = where
            if how == "drop" or site is None:
                continue
            if how == "outside":
                outside[r] += size
                if r == n - 1:
                    outside_by_site[site] += size
                continue
            series = sites.get(site)
            if series is None:
                series = sites[site] = SiteSeries(site, how, [0] * n, [0] * n)
                series.allocated_at = allocated_at.get(site, Counter())
            elif how == "stored":
                series.how = "stored"
            series.bytes[r] += size
            series.blocks[r] += count
    return sites, outside, outside_by_site.most_common(5)


def _place(
    tb: tracemalloc.Traceback, stored: dict[tracemalloc.Traceback, Site | None], policy: FramePolicy
) -> tuple[str, Site | None]:
    if tb in stored:
        site = stored[tb]
        # None: held by the interpreter's own caches.
        return ("stored", site) if site is not None else ("drop", None)
    frames = _innermost_first(tb)
    if policy.innermost_kind(frames) is FrameKind.CACHE:
        return "drop", None
    app = policy.application_site(frames)
    if app is not None:
        return "allocated", app
    return "outside", policy.outside_site(frames)
