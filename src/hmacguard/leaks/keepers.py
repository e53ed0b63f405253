"""Who keeps what survives: old containers holding new objects, and the line that stores into them.

After the measured rounds, with tracemalloc still on, an object with no allocation traceback existed
before tracing began ("old": a module global, a class attribute, a long-lived app); one with a traceback
was allocated since ("new"). Every old container that refers to new objects is a *keeper*. Walking the
new objects reachable from each keeper charges their bytes, by allocation traceback, to that keeper.

Which line stores into a keeper cannot be read off allocation tracebacks: the tuple built by
``CACHE[key] = (body, sig)`` is usually recycled from the interpreter's tuple freelist, and tracemalloc
then reports wherever that memory block was first allocated. So :func:`watch_stores` runs a few more
requests under a line tracer limited to application frames and notes, for each of the biggest keepers,
the application line during which its size or newest entry changed. Keepers it cannot watch (other
threads, objects of unknown shape) fall back to the application line that allocated most of what
they hold.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import types
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, cast

from hmacguard.leaks.frames import FrameKind, FramePolicy, Site

__all__ = ["Keepers", "find_keepers", "watch_stores"]

#: New objects one analysis may visit: a bound on time for huge retained graphs.
_WALK_LIMIT = 2_000_000
#: Up to this many new objects, gc.get_referrers() finds their holders faster than a heap scan.
_REFERRER_SEARCH = 1000
#: Keepers worth a line tracer (the biggest ones); the rest use the allocation fallback.
_WATCHED = 16
#: The only containers the collector untracks when they hold atomic values. Compared by exact
#: type: isinstance() would ask ``__class__``, which a lazy object (Django's SimpleLazyObject)
#: answers by evaluating itself -- a side effect no heap inspection may have.
_UNTRACKABLE = (dict, tuple)
#: Objects whose references are fixed at creation or live in a separately tracked object (a
#: function's __dict__, a module's namespace, a class's dict): an old one cannot hold anything new.
_FIXED = frozenset(
    {
        tuple,
        frozenset,
        type,
        types.FunctionType,
        types.CodeType,
        types.ModuleType,
        types.BuiltinFunctionType,
        types.WrapperDescriptorType,
        types.MethodWrapperType,
        types.MethodDescriptorType,
        types.ClassMethodDescriptorType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
        property,
        weakref.ref,
    }
)
#: A generic object is fingerprinted by all its referents up to this many, by count and ends beyond.
_GENERIC_REFERENTS = 256
#: ...and not watched at all past this many (each check lists them).
_GENERIC_LIMIT = 20_000


@dataclass
class Keepers:
    """Old containers holding new objects, and what each holds (bytes by allocation traceback)."""

    objects: dict[int, object] = field(default_factory=dict)
    held_bytes: Counter[int] = field(default_factory=Counter)
    #: Allocation traceback -> keeper id -> bytes (a traceback may, rarely, feed several keepers).
    by_traceback: dict[tracemalloc.Traceback, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    #: Keeper id -> application line that allocated what it holds -> bytes.
    allocated_at: dict[int, Counter[Site]] = field(default_factory=lambda: defaultdict(Counter))
    #: Keeper id -> application line its direct children were allocated at -> bytes.
    child_sites: dict[int, Counter[Site]] = field(default_factory=lambda: defaultdict(Counter))
    #: Keepers that are the interpreter's own caches (re's compiled patterns, typing's, logging's).
    interpreter: set[int] = field(default_factory=set)

    def biggest(self, n: int = _WATCHED) -> dict[int, object]:
        return {k: self.objects[k] for k, _ in self.held_bytes.most_common(n)}

    def resolve(
        self, stores: dict[int, Counter[Site]]
    ) -> tuple[dict[tracemalloc.Traceback, Site | None], dict[Site, Counter[Site]]]:
        """Map each traceback to the line that stores it; and each such line to where its bytes came from.

        A traceback kept mostly by the interpreter's own caches maps to None: nobody's leak.
        """
        site_of: dict[int, Site | None] = {key: None for key in self.interpreter}
        for key in self.objects:
            if key in self.interpreter:
                continue
            votes = stores.get(key) or self.child_sites.get(key) or self.allocated_at.get(key)
            if votes:
                site_of[key] = votes.most_common(1)[0][0]
        stored: dict[tracemalloc.Traceback, Site | None] = {}
        for tb, keepers in self.by_traceback.items():
            for key, _ in keepers.most_common():
                if key in site_of:
                    stored[tb] = site_of[key]
                    break
        allocated: dict[Site, Counter[Site]] = defaultdict(Counter)
        for key, site in site_of.items():
            if site is not None:
                allocated[site].update(self.allocated_at.get(key, Counter()))
        return stored, allocated


#: The raw lookup returns the frames tuple (innermost first) without building a Traceback object:
#: the heap scan asks it a few hundred thousand times.
_raw_traceback: Callable[[object], tuple[tuple[str, int], ...] | None] = getattr(
    tracemalloc, "_get_object_traceback", None
) or (lambda obj: _frames_of(tracemalloc.get_object_traceback(obj)))


def _frames_of(tb: tracemalloc.Traceback | None) -> tuple[tuple[str, int], ...] | None:
    return None if tb is None else tuple((f.filename, f.lineno) for f in reversed(tb))


def _interpreter_caches() -> set[int]:
    """Long-lived containers that belong to the interpreter: what they gain is its business."""
    holders: list[object] = [sys.modules, sys.path_importer_cache, gc.garbage]
    for name, attr in (
        ("re", "_cache"),
        ("re", "_cache2"),
        ("linecache", "cache"),
        ("typing", "_cleanups"),
        ("logging", "_handlers"),
        ("encodings", "_cache"),
        ("warnings", "filters"),
        ("mimetypes", "_db"),
    ):
        module = sys.modules.get(name)
        value = getattr(module, attr, None) if module is not None else None
        if value is not None:
            holders.append(value)
    logging = sys.modules.get("logging")
    if logging is not None:
        holders.append(logging.Logger.manager.loggerDict)
    typing = sys.modules.get("typing")
    caches: Iterable[object] = getattr(typing, "_caches", {}).values() if typing is not None else ()
    for cache in caches:
        holders.append(cache)
        holders.extend(gc.get_referents(cache))
    return {id(h) for h in holders}


def find_keepers(policy: FramePolicy, *, ignore: Iterable[object] = ()) -> Keepers:
    """Scan the heap for old containers holding new objects (call while tracemalloc is tracing)."""
    raw = _raw_traceback
    # The interpreter's caches are scanned like any keeper, so that what they hold (the pattern string
    # an app line built for re.compile) is recognised as theirs and set aside, not blamed on the app.
    interpreter = _interpreter_caches()
    skip = {id(o) for o in ignore}
    old = [o for o in gc.get_objects() if type(o) not in _FIXED and raw(o) is None and id(o) not in skip]
    # First the new objects any old one refers to, from one flat list of referents. The collector lists
    # tracked objects only, and it untracks dicts and tuples holding nothing but atomic values:
    # ``CACHE = {}`` filled with (bytes, str) tuples is invisible to gc.get_objects(). Such old
    # untracked containers, met among the referents, are scanned in turn.
    # Everything allocated here is traced too, at a microsecond or two apiece: the scan avoids
    # allocating per object (no id() ints, no per-object lists) wherever it can.
    new: list[object] = []
    untracked: list[object] = []
    seen_untracked: set[int] = set()
    batch = old
    while batch:
        found: list[object] = []
        for ref in gc.get_referents(*batch):
            if raw(ref) is not None:
                new.append(ref)
            elif type(ref) in _UNTRACKABLE and ref and not gc.is_tracked(ref):
                key = id(ref)
                if key not in seen_untracked and key not in skip:
                    seen_untracked.add(key)
                    found.append(ref)
        untracked.extend(found)
        batch = found
    keepers = Keepers()
    children: dict[int, list[object]] = {}
    if not new:
        return keepers
    # Then which old objects hold them. With few new objects, one C pass over the heap finds their
    # referrers (it compares each reference against every argument, so only while that is cheap).
    if len(new) <= _REFERRER_SEARCH:
        candidates = [
            o
            for o in gc.get_referrers(*new)
            if type(o) not in _FIXED and raw(o) is None and id(o) not in skip
        ]
        candidates.extend(untracked)
    else:
        candidates = [*old, *untracked]
    del old, untracked, new
    for obj in candidates:
        kids = [r for r in gc.get_referents(obj) if raw(r) is not None]
        if kids and id(obj) not in children:
            children[id(obj)] = kids
            keepers.objects[id(obj)] = obj
    del candidates
    keepers.interpreter = interpreter & set(children)

    sites: dict[tuple[tuple[str, int], ...], Site | None] = {}
    seen: set[int] = set()
    budget = _WALK_LIMIT
    for key, kids in children.items():
        for kid in kids:
            if id(kid) in seen or budget <= 0:
                continue
            seen.add(id(kid))
            before = keepers.held_bytes[key]
            budget = _walk(kid, key, policy, seen, keepers, sites, budget)
            site = _site_of(raw(kid), policy, sites)
            if site is not None:
                # Weighted by everything the child holds: the tuple that carries a body outvotes
                # the small result string cached beside it.
                keepers.child_sites[key][site] += keepers.held_bytes[key] - before
    return keepers


def _site_of(
    frames: tuple[tuple[str, int], ...] | None,
    policy: FramePolicy,
    cache: dict[tuple[tuple[str, int], ...], Site | None],
) -> Site | None:
    if frames is None:
        return None
    if frames not in cache:
        cache[frames] = policy.application_site(frames)
    return cache[frames]


def _walk(
    start: object,
    key: int,
    policy: FramePolicy,
    seen: set[int],
    keepers: Keepers,
    sites: dict[tuple[tuple[str, int], ...], Site | None],
    budget: int,
) -> int:
    """Charge ``start`` and the new objects reachable through new objects to keeper ``key``."""
    raw = _raw_traceback
    stack = [start]
    while stack and budget > 0:
        obj = stack.pop()
        budget -= 1
        frames = raw(obj)
        if frames is None:
            continue
        size = sys.getsizeof(obj, 0)
        keepers.held_bytes[key] += size
        # tracemalloc.Traceback stores frames oldest first; snapshots key their statistics by it.
        keepers.by_traceback[tracemalloc.Traceback(frames)][key] += size
        site = _site_of(frames, policy, sites)
        if site is not None:
            keepers.allocated_at[key][site] += size
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and raw(ref) is not None:
                seen.add(id(ref))
                stack.append(ref)
    return budget


# --- watching the stores -------------------------------------------------------------------------


def _fingerprint(obj: object) -> Hashable:
    """Something that changes when ``obj`` gains (or replaces its newest) entry; cheap to compute."""
    # Exact-type tests (no isinstance: see _UNTRACKABLE), then a cast for the type checker.
    kind = type(obj)
    try:
        if issubclass(kind, dict):
            d = cast("dict[object, object]", obj)
            if not dict.__len__(d):
                return 0
            last = next(reversed(d))
            return (dict.__len__(d), id(last), id(dict.__getitem__(d, last)))
        if issubclass(kind, (list, deque)):
            seq = cast("list[object]", obj)
            return (len(seq), id(seq[-1]) if seq else 0, id(seq[0]) if seq else 0)
        if issubclass(kind, (set, frozenset)):
            return len(cast("set[object]", obj))
        refs = gc.get_referents(obj)
        if len(refs) <= _GENERIC_REFERENTS:
            return tuple(id(r) for r in refs)
        # A big container of unknown shape (the C LRU cache walks its links): count and both ends.
        return (len(refs), *(id(r) for r in refs[:8]), *(id(r) for r in refs[-8:]))
    except Exception:  # an object whose reversed()/indexing misbehaves: not watchable
        return None


def _watchable(obj: object) -> bool:
    if issubclass(type(obj), (dict, list, deque, set, frozenset)):
        return True
    return len(gc.get_referents(obj)) <= _GENERIC_LIMIT


class _StoreWatch:
    """A trace function on application frames that blames the line running when a keeper changes."""

    def __init__(self, targets: dict[int, object], policy: FramePolicy) -> None:
        self.targets = {k: o for k, o in targets.items() if _watchable(o)}
        self.prints = {k: _fingerprint(o) for k, o in self.targets.items()}
        self.policy = policy
        self.blame: Site | None = None
        self.stores: dict[int, Counter[Site]] = defaultdict(Counter)

    def _is_app(self, frame: FrameType) -> bool:
        return self.policy.kind(frame.f_code.co_filename) is FrameKind.APPLICATION

    def _calling_line(self, frame: FrameType | None) -> Site | None:
        """The application line now running below ``frame``; none once the harness is reached."""
        while frame is not None:
            kind = self.policy.kind(frame.f_code.co_filename)
            if kind is FrameKind.APPLICATION:
                return Site(frame.f_code.co_filename, frame.f_lineno)
            if kind is FrameKind.HARNESS:
                return None
            frame = frame.f_back
        return None

    def check(self) -> None:
        for key, obj in self.targets.items():
            now = _fingerprint(obj)
            if now != self.prints[key]:
                self.prints[key] = now
                if self.blame is not None:
                    self.stores[key][self.blame] += 1

    def _event(self, frame: FrameType, event: str) -> None:
        # Between two application events no application line starts or ends, so whatever changed
        # since the last event changed while the line recorded then was running.
        self.check()
        if event == "return":
            self.blame = self._calling_line(frame.f_back)
        else:
            self.blame = Site(frame.f_code.co_filename, frame.f_lineno)

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if not self._is_app(frame):
            return None
        self._event(frame, event)
        return self.local_trace

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event in ("line", "return", "call"):
            self._event(frame, event)
        return self.local_trace


def watch_stores(
    run: Callable[[int], None], targets: dict[int, object], policy: FramePolicy, requests: int = 3
) -> dict[int, Counter[Site]]:
    """Run ``requests`` more under the store watch; keeper id -> application lines that changed it."""
    watch = _StoreWatch(targets, policy)
    if not watch.targets or requests <= 0:
        return {}
    previous = sys.gettrace()
    sys.settrace(watch.global_trace)
    try:
        run(requests)
    finally:
        sys.settrace(previous)
        watch.check()
    return dict(watch.stores)
