"""The bounded request body: a hard cap, a spool threshold, and a gzip inflater with a cap of its own.

Nothing here reads from a socket. Callers feed chunks in; :class:`BoundedBody` refuses the chunk that
would take it past its cap (so it never holds more than the cap, and the caller never more than one
chunk beyond), keeps small bodies in memory and spools larger ones to a temporary file. Once sealed, it
is a read-only binary file the application can read, iterate or seek, and it is released by
``close()`` -- the integrations call that when the request ends.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

from hmacguard.errors import (
    BadRequest,
    BodyStorageUnavailable,
    BodyTooLarge,
    ConfigurationError,
    UnsupportedEncoding,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_SPOOL_THRESHOLD",
    "BoundedBody",
    "GzipInflater",
    "MemoryBudget",
    "content_coding",
    "parse_content_length",
]

#: The default hard cap on a body: 1 MiB, larger than any webhook payload the providers document.
DEFAULT_MAX_BODY = 1024 * 1024
#: Bodies up to this size stay in memory; larger (capped) ones go to a temporary file.
DEFAULT_SPOOL_THRESHOLD = 256 * 1024
#: How much the integrations ask the server for at a time.
DEFAULT_CHUNK_SIZE = 64 * 1024
#: The default for the bytes of bodies all requests of a process may hold in memory at once.
DEFAULT_MEMORY_BUDGET = 64 * 1024 * 1024
#: Longest Content-Length we parse; 19 digits already exceed any sane cap, longer is malformed.
_MAX_LENGTH_DIGITS = 19


def validate_size(name: str, value: int, *, minimum: int = 1) -> int:
    """Check a size option at configuration time (a bool is not a size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def parse_content_length(value: str | None) -> int | None:
    """The declared body length, ``None`` when absent; malformed or negative values are a 400.

    Digits only: ``int()`` would accept ``+5``, ``5_000``, `` 5`` and non-ASCII digits, each a way
    for a front proxy and this process to disagree about where the body ends. A comma-separated
    list of equal values (RFC 9110 8.6 lets a recipient accept it) is accepted; differing ones are not.
    """
    if value is None:
        return None
    if value.isascii() and value.isdigit() and len(value) <= _MAX_LENGTH_DIGITS:
        return int(value)  # the common case, already in canonical form
    parts = {p.strip(" \t") for p in value.split(",")}
    if len(parts) != 1:
        raise BadRequest("Content-Length lists different values")
    text = parts.pop()
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_LENGTH_DIGITS:
        raise BadRequest("Content-Length is not a non-negative integer")
    return int(text)


def content_coding(value: str | None, *, allow_gzip: bool) -> str | None:
    """``"gzip"`` when the body must be inflated, ``None`` for identity; anything else is a 415."""
    if value is None:
        return None
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    if not codings or codings == ["identity"]:
        return None
    if allow_gzip and codings in (["gzip"], ["x-gzip"]):
        return "gzip"
    raise UnsupportedEncoding("Content-Encoding is not accepted here")


log = logging.getLogger(__name__)

#: Seconds between two warnings that the memory budget is spent (one per burst, not per body).
_BUDGET_WARN_EVERY = 60.0


class MemoryBudget:
    """The bytes of request bodies every request of a process may hold in memory at once.

    The per-request cap bounds one request; it does not bound how many requests hold a body at
    the same time. Under an ASGI server (or gunicorn's threads) one process takes as many
    connections as clients open, and each can trickle a body just below ``spool_threshold``: 400
    such connections held about 100 MiB in one uvicorn worker (bench/bench_memory_budget.py). A
    :class:`BoundedBody` counts what it keeps in memory here; when a chunk would pass the budget,
    that body goes to its temporary file instead -- memory stays bounded, the request is still
    served, nothing is refused. Only bodies read in several pieces are counted: one that arrives
    whole in a single read (the usual small delivery) is the server's own buffer, handed over.

    One budget may serve several verifiers (give each the same instance); thread-safe. ``limit``
    0 sends every multi-read body to disk. ``on_spill``: called (no arguments, outside the lock)
    each time a body is sent to disk for want of room -- e.g. a prometheus-client ``Counter``'s
    ``inc``, which, unlike a callback gauge, works in multiprocess mode; an exception it raises is
    never raised into the request (logged with the budget's own warning, at most once a minute).

    :meth:`give` never blocks and takes no lock: it runs from ``BoundedBody.__del__`` and from
    ``close()`` in a generator's or coroutine's finaliser, which the garbage collector may run in
    any thread at any point -- on Python 3.12+ even inside :meth:`take`, while that thread holds
    the lock (a non-reentrant lock taken there again would hang the thread, and then every request
    of the process). What is given back is queued and subtracted under the lock by the next
    :meth:`take` or :attr:`in_use`; until then the count is, if anything, too high, never too low.
    """

    __slots__ = (
        "__weakref__", "_counted_in", "_counting", "_dropped", "_listeners", "_lock", "_next_warning",
        "_returned", "_used", "limit", "on_spill", "spilled",
    )  # fmt: skip

    def __init__(
        self, limit: int = DEFAULT_MEMORY_BUDGET, *, on_spill: Callable[[], object] | None = None
    ) -> None:
        self.limit = validate_size("memory_budget", limit, minimum=0)
        if on_spill is not None and not callable(on_spill):
            raise ConfigurationError(f"on_spill must be callable, not {on_spill!r}")
        self.on_spill = on_spill
        self._used = 0
        self._lock = threading.Lock()
        #: Bytes given back and not yet subtracted from ``_used`` (appended without the lock).
        self._returned: deque[int] = deque()
        self._next_warning = 0.0
        #: Bodies sent to disk early because the budget was spent (a count since start-up).
        self.spilled = 0
        #: Called at each spill after ``on_spill``: the metrics sinks of the guards using this budget
        #: (:meth:`add_spill_listener`). A tuple, replaced whole: read without the lock.
        self._listeners: tuple[Callable[[], object], ...] = ()
        #: Called once in each process, at the first bytes counted there (:meth:`add_count_listener`).
        self._counting: tuple[Callable[[], object], ...] = ()
        #: The process that has called them (0: none; a forked child reads its parent's, not its own).
        self._counted_in = 0
        #: Listeners to stop calling, queued without the lock (:meth:`remove_listener`).
        self._dropped: deque[Callable[[], object]] = deque()

    def add_spill_listener(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` (no arguments) at each spill too, after ``on_spill``; as for ``on_spill``,
        an exception it raises is logged, never raised into the request. The metrics sinks use it
        (:class:`~hmacguard.guard.prometheus.PrometheusMetrics`): ``on_spill`` stays yours."""
        if not callable(listener):
            raise ConfigurationError(f"a spill listener must be callable, not {listener!r}")
        with self._lock:
            if self._dropped:
                self._drop_listeners()
            self._listeners = (*self._listeners, listener)

    def add_count_listener(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` (no arguments) once in each process: at the first bytes this budget
        counts there -- a worker forked from a process that called it calls it again, at its own
        first. Outside the lock; an exception it raises is logged, never raised into the request.

        The metrics sinks use it in prometheus-client's multiprocess mode, where each worker writes
        its own gauges: a worker whose every connection trickles an upload decides nothing, and may
        hold bodies without ever spilling one, yet its gauges must show what it holds."""
        if not callable(listener):
            raise ConfigurationError(f"a count listener must be callable, not {listener!r}")
        with self._lock:
            if self._dropped:
                self._drop_listeners()
            self._counting = (*self._counting, listener)

    def remove_listener(self, listener: Callable[[], object]) -> None:
        """Stop calling ``listener`` (the very object given to :meth:`add_spill_listener` or
        :meth:`add_count_listener`).

        Takes no lock and never blocks, as :meth:`give`: the metrics sinks call it when they are
        collected, which may happen in any thread at any point. It is queued, and done at the next
        listener added or spill (until then, the listener may still be called).
        """
        self._dropped.append(listener)  # deque.append is atomic: no lock

    def _drop_listeners(self) -> None:
        """Stop calling the queued listeners (the caller holds the lock)."""
        dropped = self._dropped
        gone: list[Callable[[], object]] = []
        while dropped:
            gone.append(dropped.popleft())

        def kept(listeners: tuple[Callable[[], object], ...]) -> tuple[Callable[[], object], ...]:
            return tuple(each for each in listeners if not any(each is g for g in gone))

        self._listeners, self._counting = kept(self._listeners), kept(self._counting)

    def _collect_returned(self) -> None:
        """Subtract what was given back (the caller holds the lock)."""
        returned = self._returned
        while returned:
            self._used -= returned.popleft()

    @property
    def in_use(self) -> int:
        """Bytes counted right now."""
        with self._lock:
            self._collect_returned()
            return self._used

    def take(self, n: int) -> bool:
        """Count ``n`` more bytes if they fit; ``False`` (and nothing counted) if they do not."""
        with self._lock:
            if self._returned:
                self._collect_returned()
            if self._used + n <= self.limit:
                self._used += n
                # The count listeners run once a process: a tuple test, then a pid compared.
                if not self._counting or self._counted_in == os.getpid():
                    return True
                self._counted_in = os.getpid()
                first = self._counting
                warn = False
            else:
                first = ()
                self.spilled += 1
                if self._dropped:
                    self._drop_listeners()
                now = time.monotonic()
                warn = now >= self._next_warning
                if warn:
                    self._next_warning = now + _BUDGET_WARN_EVERY
        if first:
            self._call(first, warn=True)  # once a process: always worth a line if one fails
            return True
        if warn:
            log.warning(
                "memory budget of %d bytes spent by bodies in flight: bodies go to temporary "
                "files until it frees up (many slow uploads at once, or the budget is too small)",
                self.limit,
            )
        self._call(self._listeners if self.on_spill is None else (self.on_spill, *self._listeners), warn=warn)
        return False

    def _call(self, hooks: tuple[Callable[[], object], ...], *, warn: bool) -> None:
        """Call each hook; one that raises is logged (when ``warn``), never raised into the request."""
        for hook in hooks:
            try:
                hook()
            except Exception as error:  # a metrics hook must not fail the request
                if warn:  # at a spill, as often as the budget's own warning, not once per spill
                    which = "on_spill" if hook is self.on_spill else f"listener {hook!r}"
                    log.warning("memory budget: %s raised %s", which, type(error).__name__)

    def give(self, n: int) -> None:
        """Stop counting ``n`` bytes (a body spooled to disk or released); never blocks (see above)."""
        self._returned.append(n)  # deque.append is atomic: no lock, safe in a finaliser

    def __repr__(self) -> str:
        return f"MemoryBudget(limit={self.limit}, in_use={self.in_use}, spilled={self.spilled})"


class BoundedBody:
    """A body of at most ``limit`` bytes, in memory up to ``spool_threshold``, then in a temp file.

    Write with :meth:`append` while receiving, then :meth:`seal` it; afterwards it is a read-only,
    seekable binary file (``read``, ``readinto``, ``readline(s)``, iteration by bounded lines,
    ``seek``, ``tell``) -- what WSGI, Django and Werkzeug ask of ``wsgi.input``. ``close()`` frees the
    memory or deletes the file.

    In memory the chunks are kept as received, by reference, and reads walk the list: joining
    them would copy the body once more, which costs as much as the HMAC itself. A plain class with
    slots rather than an ``io.RawIOBase``: one is built per request, and the io base class's
    construction and finaliser cost more than verifying a small body.

    ``budget``: the process's :class:`MemoryBudget`, which counts the bytes held in memory from
    their append until the body is spooled or closed; a chunk it has no room for spools the body.
    """

    __slots__ = (
        "_budget", "_chunks", "_closed", "_counted", "_file", "_index", "_offset", "_pos", "_sealed",
        "_size", "limit", "spool_threshold",
    )  # fmt: skip

    def __init__(
        self,
        *,
        limit: int,
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        budget: MemoryBudget | None = None,
    ) -> None:
        self._closed = False
        self.limit = limit
        self.spool_threshold = spool_threshold
        self._budget = budget
        #: Bytes counted in the budget for this body (its in-memory chunks).
        self._counted = 0
        self._size = 0
        self._sealed = False
        self._chunks: list[bytes] = []
        self._file: tempfile.SpooledTemporaryFile[bytes] | None = None
        # Read position over the in-memory chunks: absolute offset, chunk index, offset in chunk.
        self._pos = 0
        self._index = 0
        self._offset = 0

    @property
    def size(self) -> int:
        """Bytes held (the whole body once sealed)."""
        return self._size

    @property
    def spooled(self) -> bool:
        """Whether the body went to a temporary file."""
        return self._file is not None

    def append(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add a chunk; the chunk that would pass the cap is refused whole (413)."""
        if self._sealed or self._closed:
            raise ValueError("the body is sealed")
        n = len(chunk)
        if not n:
            return
        if self._size + n > self.limit:
            raise BodyTooLarge(f"body exceeds the {self.limit}-byte limit", limit=self.limit)
        if self._file is None:
            if self._size + n > self.spool_threshold:
                self._spool()
            elif self._budget is not None:
                if self._budget.take(n):
                    self._counted += n  # at once: whatever fails below, close() gives it back
                else:
                    self._spool()
        if self._file is not None:
            self._write(chunk)
        else:
            # Callers may reuse a bytearray buffer; only immutable bytes are safe to keep.
            self._chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
        self._size += n

    def _spool(self) -> None:
        """Move the body to its temporary file (past the threshold, or no room in the budget)."""
        # The file lives as long as the body (closed by close()), so no context manager; max_size=1
        # rolls it over to disk on the first write.
        self._file = tempfile.SpooledTemporaryFile(max_size=1)  # noqa: SIM115
        for held in self._chunks:
            self._write(held)
        self._chunks = []
        self._uncount()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Write to the temporary file; a file that cannot be made or written (a full or
        unwritable ``TMPDIR``) is the guard's 503, not the server's 500."""
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as error:
            raise BodyStorageUnavailable(
                f"the body could not be written to a temporary file ({type(error).__name__})"
            ) from None

    def _uncount(self) -> None:
        # Zeroed before giving: two threads closing the same body (the server, and an application
        # thread it was handed to) must not both give its bytes back.
        counted, self._counted = self._counted, 0
        if counted:
            assert self._budget is not None  # only a budgeted body counts
            self._budget.give(counted)

    def seal(self) -> None:
        """End of body: rewind for reading; no more appends."""
        self._sealed = True
        self.seek(0)

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        """Nothing to flush: the body is read-only once sealed."""

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def _check(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed body")

    # -- the read-only file interface -------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        if self._file is not None:
            return self._file.read(-1 if size is None else size)
        want = self._size - self._pos if size is None or size < 0 else size
        if want <= 0 or self._index >= len(self._chunks):
            return b""
        chunk = self._chunks[self._index]
        if self._offset == 0 and (
            want == len(chunk) or (want > len(chunk) and self._index == len(self._chunks) - 1)
        ):
            # The common case (one chunk asked for whole) returns it without a copy.
            self._advance(len(chunk))
            return chunk
        parts: list[bytes] = []
        while want > 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            piece = chunk[self._offset : self._offset + want]
            parts.append(piece)
            want -= len(piece)
            self._advance(len(piece))
        return b"".join(parts)

    def _advance(self, n: int) -> None:
        self._pos += n
        self._offset += n
        while self._index < len(self._chunks) and self._offset >= len(self._chunks[self._index]):
            self._offset -= len(self._chunks[self._index])
            self._index += 1

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        self._check()
        if self._file is not None:
            return self._file.readline(-1 if size is None else size)
        limit = self._size - self._pos if size is None or size < 0 else size
        parts: list[bytes] = []
        while limit > 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            end = chunk.find(b"\n", self._offset, self._offset + limit)
            stop = self._offset + limit if end < 0 else end + 1
            piece = chunk[self._offset : stop]
            parts.append(piece)
            limit -= len(piece)
            self._advance(len(piece))
            if end >= 0:
                break
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check()
        if self._file is not None:
            return self._file.seek(offset, whence)
        if offset == 0 and whence == io.SEEK_SET:
            self._pos = self._index = self._offset = 0
            return 0
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        target = base + offset
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = self._index = self._offset = 0
        self._advance(min(target, self._size))
        self._pos = target
        return target

    def tell(self) -> int:
        self._check()
        return self._file.tell() if self._file is not None else self._pos

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        # WSGI and Django iterate bodies by line; a body without newlines must not become one
        # unbounded line, so iteration yields lines of at most one chunk.
        line = self.readline(DEFAULT_CHUNK_SIZE)
        if not line:
            raise StopIteration
        return line

    def getvalue(self) -> bytes:
        """The whole body as bytes (at most ``limit`` of them); the position is left unchanged."""
        self._check()
        if self._file is None:
            return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        here = self._file.tell()
        self._file.seek(0)
        try:
            return self._file.read()
        finally:
            self._file.seek(here)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._chunks = []
        self._closed = True
        self._uncount()

    def __del__(self) -> None:
        # A body nobody closed (a code path that forgot, an application keeping a reference) must
        # not keep its bytes counted for the life of the process. getattr: a body whose __init__
        # never ran (a wrong call) has no _counted, and a finaliser's AttributeError is only noise.
        if getattr(self, "_counted", 0):
            self._uncount()

    def __enter__(self) -> BoundedBody:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class GzipInflater:
    """Inflates a gzip body chunk by chunk without ever producing more than ``limit`` bytes.

    ``zlib`` is told the most it may return on each call, so a 1 KiB bomb that would inflate to
    a gigabyte is stopped after ``limit + 1`` bytes, not after it has been allocated.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Inflated pieces of ``chunk``; raises 413 past the limit, 400 on corrupt data."""
        data = chunk
        while data:
            if self._z.eof:
                raise BadRequest("data after the end of the gzip stream")
            allowed = self.limit - self.produced + 1
            try:
                out = self._z.decompress(data, allowed)
            except zlib.error:
                raise BadRequest("the gzip body is corrupt") from None
            self._count(out)
            if out:
                yield out
            data = self._z.unconsumed_tail
            if not out and data:
                # zlib made no progress on input it kept: corrupt, not a reason to spin.
                raise BadRequest("the gzip body is corrupt")
        if self._z.unused_data:
            raise BadRequest("data after the end of the gzip stream")

    def _count(self, out: bytes) -> None:
        """Count inflated bytes; 413 past the limit."""
        self.produced += len(out)
        if self.produced > self.limit:
            raise BodyTooLarge(f"inflated body exceeds the {self.limit}-byte limit", limit=self.limit)

    def finish(self) -> Iterator[bytes]:
        """Whatever zlib still holds; a truncated stream is a 400."""
        try:
            out = self._z.flush()
        except zlib.error:
            raise BadRequest("the gzip body is corrupt") from None
        self._count(out)
        if out:
            yield out
        if not self._z.eof:
            raise BadRequest("the gzip body is truncated")


def memory_budget_of(value: int | MemoryBudget | None) -> MemoryBudget | None:
    """A verifier's ``memory_budget`` argument as a budget: ``None`` (unbounded), a shared
    :class:`MemoryBudget` as given, or a limit in bytes for a budget of its own (validated there:
    a bad one is a ConfigurationError). Here, in a module the compiled build leaves as Python, so that
    the value reaches the check as given (hatch_build.py)."""
    if value is None or isinstance(value, MemoryBudget):
        return value
    return MemoryBudget(value)
