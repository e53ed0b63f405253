"""ASGI: :class:`ASGIGuard`, a pure ASGI middleware, and :func:`guard_receive`, an async driver.

The application behind the guard receives the verified, bounded body again through ``receive`` (in
chunks, so a spooled body is never loaded whole), with ``content-length`` set to its size (a gzip body
arrives inflated, its ``content-encoding`` removed), and finds the
:class:`~hmacguard.guard.verifier.VerifiedBody` as ``scope["hmacguard.verified"]``. The body is released
when the application returns.

Each ``receive()`` is bounded by the time left for the body (``asyncio`` timeouts), so a slow-drip
client gets 408 on time. Replay and rate-limit stores that block on the network (Redis) are called in
a worker thread, never on the event loop. Refusals carry ``Connection: close`` and the rest of the
body is never read.

Which requests are protected: the path the application routes on -- ``scope["path"]`` without
``root_path`` when it starts with it, as Starlette and Django route (uvicorn ``--root-path`` and
Starlette ``Mount`` put the prefix in both) -- and ``scope["path"]`` as it is, and
``root_path + path`` (for servers that leave the prefix out of ``path``), each in every spelling a
router could route (:mod:`hmacguard.guard.paths`). A path that cannot be interpreted is answered
400, never passed through.

Delivery semantics: the delivery's replay key is held while the application runs, then committed
if it started a response below 500, released if it raised, answered 5xx or returned without a
response (the client left first) -- so the sender's retry is processed (:mod:`hmacguard.guard.replay`).
It is settled as soon as the response is complete, not when the application returns: work done
after the answer (Starlette's background tasks) can neither release a delivery the sender saw
answered (a replay would be processed again) nor outlast the hold's pending time.

After the verified body, the application's ``receive`` yields only what is not body: servers such as
hypercorn end a body with a separate empty ``http.request`` message, which the guard -- having read
exactly ``Content-Length`` bytes -- never consumed; it is dropped, so the application waiting for a
disconnect (Django does) sees ``http.disconnect``, not a stray body message.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from hmacguard.errors import BodyTimeout, PathInvalid, RequestRejected
from hmacguard.guard.lane import Handoff
from hmacguard.guard.policy import (
    GUARD_KEY,
    HOLD_KEY,
    Accepted,
    ClientDisconnected,
    Guard,
    Outcome,
    ReadBody,
    Rejected,
    StoreCall,
    outer_hold,
    processed,
)
from hmacguard.guard.verifier import OuterHold, VerifiedBody
from hmacguard.http import LowerCaseHeaders, RequestHead

if TYPE_CHECKING:
    from hmacguard.guard.decision import DecisionSink
    from hmacguard.guard.ratelimit import RateLimiter
    from hmacguard.guard.verifier import Verifier

__all__ = ["ASGIGuard", "guard_receive", "head_from_scope", "request_paths"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: scope key under which the application finds the VerifiedBody.
VERIFIED_KEY = "hmacguard.verified"
#: scope key of the deliveries an outermost watch settles by the answer the client gets
#: (:class:`~hmacguard.integrations.fastapi.DeliverySettler` around Starlette's whole stack): a
#: guard whose application raises before answering hands its delivery there, because an exception
#: handler outside every middleware (Starlette's ServerErrorMiddleware) may still answer 2xx.
OUTERMOST_KEY = "hmacguard.outermost"
_DROPPED = (b"content-length", b"content-encoding", b"transfer-encoding")


def head_from_scope(scope: Scope) -> RequestHead:
    """The request head the decision core needs, from an ASGI HTTP scope."""
    headers = LowerCaseHeaders()
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    client = scope.get("client")
    # Positional: keyword arguments cost a dict unpacking on every request.
    return RequestHead(
        scope.get("method", "GET"), scope.get("path", "") or "/", headers, str(client[0]) if client else None
    )


async def _receive_within(receive: Receive, timeout: float | None) -> Message:
    """``await receive()``, raising TimeoutError after ``timeout`` seconds.

    A message the server already holds (a small body arrives with its head) comes back without
    suspending, and needs no timer: arming and cancelling one costs more than the rest of a small
    request's read. So the first step of ``receive()`` runs here, and only when it suspends does
    the rest run under the timeout, from where it stopped (:class:`_Resumed`).
    """
    if timeout is None:
        return await receive()
    steps = receive().__await__()
    try:
        waiting = steps.send(None)
    except StopIteration as done:
        message: Message = done.value
        return message
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await _Resumed(steps, waiting)
    return await asyncio.wait_for(_Resumed(steps, waiting), timeout)  # pragma: no cover - Python 3.10


class _Resumed:
    """The rest of an awaitable whose first step has run and suspended on ``waiting``: awaiting
    this awaits the original from where it stopped, as if ``await`` had never been interrupted.

    ``waiting`` goes up to the task, as the original would have sent it; once the task wakes, the
    original resumes (``yield from``: every later step, and anything thrown in, delegated). Anything
    thrown in while it is still suspended on ``waiting`` -- the timeout's cancellation -- is thrown
    into it there.
    """

    __slots__ = ("_steps", "_waiting")

    def __init__(self, steps: Generator[Any, None, Message], waiting: Any) -> None:
        self._steps = steps
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, Message]:
        steps = self._steps
        try:
            yield self._waiting
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:
            try:
                waiting = steps.throw(exc)
            except StopIteration as done:
                message: Message = done.value
                return message
            return (yield from _Resumed(steps, waiting).__await__())
        return (yield from steps)


class _BodyReader:
    """Turns ASGI ``http.request`` messages into the chunks the decision core asks for.

    :meth:`hand_back` gives back what one read returned or raised (the single-read lane's), for the
    next :meth:`read` to return or raise again before anything else is received.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False
        self._handed_back: object = None

    def hand_back(self, result: object) -> None:
        """``result``: bytes this reader returned, or what it raised (the lane's one read)."""
        self._handed_back = result

    async def read(self, timeout: float | None) -> bytes:
        handed_back = self._handed_back
        if handed_back is not None:
            self._handed_back = None
            if isinstance(handed_back, Exception):
                raise handed_back
            return cast(bytes, handed_back)  # what read() returned: always bytes
        if self._done:
            return b""
        while True:
            try:
                message = await _receive_within(self._receive, timeout)
            except TimeoutError:
                raise BodyTimeout("the request body arrived too slowly") from None
            kind = message.get("type")
            if kind == "http.disconnect":
                raise ClientDisconnected("the client closed the connection mid-body")
            if kind != "http.request":
                continue
            body = message.get("body", b"")
            if not message.get("more_body", False):
                self._done = True
            if body or self._done:
                return bytes(body)


async def _in_thread(func: Callable[[], Any]) -> Any:
    """``func()`` in a worker thread. If the request is cancelled meanwhile, the call still runs to
    its end (a thread cannot be stopped) and is waited for before the cancellation goes on, so that
    what it did -- an admission counted in flight, a delivery held -- is undone when the decision is
    closed, instead of lingering until it lapses. Waited for however often the cancellation comes:
    a second ``cancel()``, or anyio's cancel scopes, which deliver it again at every await while
    the scope is cancelled (tests/guard/test_review_inflight_rotation.py)."""
    call = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        while not call.done():
            try:
                await asyncio.wait([call])
            except asyncio.CancelledError:
                continue
        raise


async def guard_receive(
    guard: Guard, head: RequestHead, receive: Receive, held_outside: OuterHold | None = None
) -> Outcome:
    """Run the guard on an ASGI request, reading ``receive``; never raises RequestRejected.

    Framework integrations call this (Starlette/FastAPI dependencies, Django under ASGI);
    :class:`ASGIGuard` wraps it. A small delivery is first offered to the guard's single-read lane
    (:mod:`hmacguard.guard.lane`), which only accepts; anything it does not accept is decided by
    the general path, which gets what the lane read as its first read.
    """
    reader = _BodyReader(receive)
    started: float | None = None
    checked_at: float | None = None
    # Not the lane when a guard around holds this delivery (``held_outside``): see Verifier.hold.
    if guard.lane.open and held_outside is None:
        taken = await _through_lane(guard, head, reader)
        if isinstance(taken, Handoff):
            # The same reader: it knows whether the body already ended.
            reader.hand_back(taken.result)
            started, checked_at = taken.started, taken.checked_at
        elif taken is not None:
            return taken
    process = guard.process(head, body_started=started, checked_at=checked_at, held_outside=held_outside)
    try:
        effect = next(process)
        while True:
            error: RequestRejected | None = None
            result: Any = None
            try:
                if isinstance(effect, ReadBody):
                    result = await reader.read(effect.timeout)
                elif isinstance(effect, StoreCall):
                    if effect.blocking:
                        result = await _in_thread(effect.func)
                    else:
                        result = effect.func()
            except RequestRejected as exc:
                error = exc
            effect = process.throw(error) if error is not None else process.send(result)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome
    finally:
        process.close()


async def _through_lane(guard: Guard, head: RequestHead, reader: _BodyReader) -> Outcome | Handoff | None:
    """Offer the request to the single-read lane: its outcome, the read it hands to the general
    path, or ``None`` when the lane does not take the request (nothing has been received)."""
    lane = guard.lane
    headers = head.headers
    length = lane.length_taken(headers.get("content-length"), "content-encoding" in headers)
    if not length:
        return None
    verifier = guard.verifier
    now = verifier.clock()
    claim = lane.claim(headers, now)
    if claim is None:
        return None
    started = _monotonic()
    try:
        # One message, under the body timeout -- the general path's first read, made here.
        chunk = await reader.read(verifier.body_timeout)
    except RequestRejected as error:  # too slow, or the client left: the general path answers it
        return Handoff(error, started, now)
    # Taken if that message held the whole declared body. A server that ends the body with a
    # separate empty message (hypercorn) leaves it unread, as the general path does (module docs).
    try:
        taken = lane.take(claim, chunk, length, started, now)
    except RequestRejected as error:  # the replay store's, final (lane.py)
        return guard.refuse_from_lane(error, head, length, started)
    if guard.sinks.active and isinstance(taken, Accepted):
        guard.report_lane_acceptance(head, taken, started)
    return taken


_monotonic = time.monotonic


async def send_rejection(rejected: Rejected, send: Send) -> None:
    problem = rejected.problem
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in problem.headers],
        }
    )
    await send({"type": "http.response.body", "body": problem.body, "more_body": False})


def request_paths(scope: Scope) -> tuple[str, ...]:
    """The spellings of the request's path the guard matches (see the module docstring)."""
    path = scope.get("path") or "/"
    root = scope.get("root_path") or ""
    if not isinstance(path, str) or not isinstance(root, str):
        raise PathInvalid("the request path is not text")
    if not root:
        return (path,)
    if path.startswith(root):
        # Starlette routes on the rest only after a "/" boundary, Django strips the prefix anyway:
        # both spellings are considered.
        return (path[len(root) :] or "/", path)
    return (path, root + path)


def replaying_receive(body: VerifiedBody, receive: Receive, chunk_size: int) -> Receive:
    """A ``receive`` that yields the verified body, then defers to the server for what is not body
    (``http.disconnect``), dropping any leftover ``http.request`` message (see the module docs)."""
    file = body.file
    file.seek(0)
    finished = body.size == 0
    sent_empty = False

    async def receive_body() -> Message:
        nonlocal finished, sent_empty
        if not finished:
            data = file.read(chunk_size)
            finished = file.tell() >= body.size
            return {"type": "http.request", "body": data, "more_body": not finished}
        if not sent_empty and body.size == 0:
            sent_empty = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message.get("type") != "http.request":
                return message

    return receive_body


def vouched_in(guard: Guard, scope: Scope) -> Accepted | None:
    """The body a guard around this one verified (stacked guards over overlapping paths), accepted as
    it is when ``guard`` vouches for it (:meth:`Guard.vouched`): that guard settles its delivery.
    ``None`` otherwise: verify the request (again: :func:`again_from_outer`)."""
    outer = scope.get(VERIFIED_KEY)
    if outer is None:
        return None
    vouched = guard.vouched(outer, scope.get(GUARD_KEY))
    if vouched is None:
        return None
    guard.watch_outer_settling(scope.get(HOLD_KEY))
    return Accepted(vouched, [], None)


def again_from_outer(scope: Scope, receive: Receive, chunk_size: int) -> tuple[Receive, OuterHold | None]:
    """What a guard verifying again reads -- the body a guard around it verified, from its start,
    whatever read it in between -- and the delivery that guard holds (Verifier.hold); ``receive``
    and ``None`` when no guard around verified this request."""
    outer = scope.get(VERIFIED_KEY)
    if not isinstance(outer, VerifiedBody) or outer.closed:
        return receive, None
    held = outer_hold(scope.get(HOLD_KEY))
    return replaying_receive(outer, receive, chunk_size), held


def verified_scope(scope: Scope, accepted: Accepted, guard: Guard) -> Scope:
    """A copy of ``scope`` whose headers describe the body ``guard`` accepted, with the keys a guard
    nested inside reads."""
    body = accepted.body
    headers = []
    for name, value in scope.get("headers", ()):  # a loop, not a comprehension: no function frame
        if name.lower() not in _DROPPED:
            headers.append((name, value))
    headers.append((b"content-length", str(body.size).encode("ascii")))
    new = dict(scope)
    new["headers"] = headers
    new[VERIFIED_KEY] = body
    new[GUARD_KEY] = guard
    if accepted.delivery is not None:  # else a guard around holds it (if any): its entry stays
        new[HOLD_KEY] = (accepted.delivery, guard.verifier)
    return new


class ResponseCompletion:
    """Tells the message that completes an ASGI response: the last body message (or a
    ``http.response.pathsend``), or the last trailers message when the start announced trailers."""

    __slots__ = ("_trailers",)

    def __init__(self) -> None:
        self._trailers = False

    def completes(self, message: Message) -> bool:
        kind = message.get("type")
        if kind == "http.response.start":
            self._trailers = bool(message.get("trailers", False))
            return False
        if kind == "http.response.body":
            return not self._trailers and not message.get("more_body", False)
        if kind == "http.response.trailers":
            return not message.get("more_trailers", False)
        return kind == "http.response.pathsend" and not self._trailers


class AnswerWatch:
    """Watches what an application sends, to settle deliveries by its answer.

    ``send`` passes every message on (adding ``extra_headers`` to the response start) and notes the
    status; the deliveries in ``pending`` are settled the moment the whole answer is out -- not when
    the application returns, because background work runs until then and must neither release an
    answered delivery nor outlast its hold -- or by :meth:`finish` when it never completes.
    ``pending`` may still grow while the application runs (the FastAPI dependency appends to it).
    """

    def __init__(
        self, send: Send, pending: list[Accepted], extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self._send = send
        self._pending = pending
        self._extra = extra_headers
        self._completion = ResponseCompletion()
        self.status: int | None = None  # of the response start, once sent
        self._complete = False  # the whole answer went out: it, not a later failure, decides

    async def send(self, message: Message) -> None:
        if message.get("type") == "http.response.start":
            self.status = int(message.get("status", 500))
            if self._extra:
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *self._extra]
        await self._send(message)
        if self._completion.completes(message):
            self._complete = True
            for accepted in self._pending:
                await settle(accepted, processed(self.status))

    async def finish(self, *, failed: bool) -> None:
        """Settle what the answer did not (settling twice is a no-op).

        Every one of them, through a cancellation: a request cancelled again while one settle
        waits on its worker thread (which goes on, shielded) must not leave the next one held
        -- a delivery a guard inside handed out comes after the dependency's, say. Once the whole
        answer went out, it decides: a cancellation while :meth:`send` settled one of them (the
        client has its answer, and will not retry) does not release the others.
        """
        done = processed(self.status) if self._complete else not failed and processed(self.status)
        cancelled: BaseException | None = None
        for accepted in self._pending:
            try:
                await settle(accepted, done)
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled


async def call_verified(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, accepted: Accepted, guard: Guard
) -> None:
    """Call ``app`` with the body ``guard`` verified; settle the delivery by its answer and release
    the body."""
    body = accepted.body
    extra = (
        [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in accepted.headers]
        if accepted.headers
        else None
    )
    watch = AnswerWatch(send, [accepted], extra)
    # Read before the application runs: only a watch *around* this guard may settle for it.
    outermost: list[Accepted] | None = scope.get(OUTERMOST_KEY)
    failed = True
    try:
        replay = replaying_receive(body, receive, guard.verifier.chunk_size)
        await app(verified_scope(scope, accepted, guard), replay, watch.send)
        failed = False
    finally:
        try:
            if failed and watch.status is None and outermost is not None:
                # Raised before answering: what the client gets is decided further out.
                outermost.append(accepted)
            else:
                await watch.finish(failed=failed)
        finally:
            body.close()


async def settle(accepted: Accepted, was_processed: bool) -> None:
    """Commit or release the delivery's hold (in a worker thread when the store may block)."""
    delivery = accepted.delivery
    if delivery is None:
        return
    if delivery.blocking:
        # Shielded: a cancelled request (the client left) must still release its hold.
        await asyncio.shield(asyncio.to_thread(delivery.settle, was_processed))
    else:
        delivery.settle(was_processed)


class ASGIGuard:
    """Pure ASGI middleware: HTTP requests to the protected paths reach ``app`` only once verified.

    Keyword-only configuration: ``verifier`` (required), ``rate_limiter``, ``paths``, ``methods``
    and ``on_decision`` as for :class:`~hmacguard.guard.policy.Guard`; ``route_check``, an optional
    ``callable(scope) -> bool`` saying whether the framework would route a request to a protected
    view (asked when no spelling of the path matches; the Django integration passes one). Works
    with ``app.add_middleware(ASGIGuard, ...)``; on FastAPI / Starlette call
    :func:`hmacguard.integrations.fastapi.install` too, or a catch-all exception handler's 2xx
    (answered outside every added middleware) is seen as the endpoint's error, and the delivery
    released.

    Trust model: which requests are protected is decided on every spelling of the routed path, the
    full path and ``root_path + path`` a router could route (:mod:`hmacguard.guard.paths`): wrap the
    application whose routes ``paths`` names, mounted anywhere, under any ``--root-path``. Lifespan
    and websocket scopes, and unprotected requests, pass through untouched; a path that cannot be
    interpreted gets 400. See :mod:`hmacguard.guard.ratelimit` for the client-address trust model.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
        on_decision: DecisionSink | Iterable[DecisionSink] | None = None,
        route_check: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard(
            verifier, rate_limiter=rate_limiter, paths=paths, methods=methods, on_decision=on_decision
        )
        self.route_check = route_check

    def protects(self, scope: Scope) -> bool:
        """Whether this request must be verified first; raises PathInvalid (see the class docs)."""
        check = self.route_check
        return self.guard.protects(
            scope.get("method", "GET"),
            *request_paths(scope),
            routed=None if check is None else lambda: check(scope),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            protected = self.protects(scope)
        except RequestRejected as error:
            await send_rejection(self.guard.reject(error), send)
            return
        if not protected:
            await self.app(scope, receive, send)
            return
        outcome: Outcome | None = vouched_in(self.guard, scope)
        if outcome is None:
            reading, held = again_from_outer(scope, receive, self.guard.verifier.chunk_size)
            outcome = await guard_receive(self.guard, head_from_scope(scope), reading, held)
        if isinstance(outcome, Rejected):
            await send_rejection(outcome, send)
            return
        await call_verified(self.app, scope, receive, send, outcome, self.guard)
