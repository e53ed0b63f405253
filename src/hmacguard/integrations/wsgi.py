"""WSGI: :class:`WSGIGuard` middleware and :func:`guard_environ`, a blocking driver of the decision core.

The application behind the guard sees the verified, bounded body as ``wsgi.input`` with a matching
``CONTENT_LENGTH`` (a gzip body arrives inflated, its ``Content-Encoding`` removed), and the
:class:`~hmacguard.guard.verifier.VerifiedBody` as ``environ["hmacguard.verified"]``. The body is released
when the server closes the response iterable, as PEP 3333 requires servers to do.

Body read timeout under WSGI. WSGI gives an application a file, not a socket: the deadline is checked
between reads, and when the server exposes its socket (gunicorn's ``environ["gunicorn.socket"]``)
each read is also bounded by a socket timeout set to the time left, restored afterwards. A client that
trickles one byte at a time inside a single read is ultimately bounded by the server: gunicorn's sync
worker is killed after ``--timeout``; use an ASGI server where the deadline must be exact.

Refusals answer without reading the rest of the body and ask for ``Connection: close``. PEP 3333
forbids hop-by-hop headers from applications and wsgiref enforces it, so the header is left out
there; gunicorn's sync worker closes every connection after its response anyway. An error the
server raises while the guard reads (gunicorn's malformed-chunk errors) is answered 400
problem+json and charged to the failure budget.

Which requests are protected: ``PATH_INFO`` (what the application routes on, relative to
``SCRIPT_NAME``) and ``SCRIPT_NAME + PATH_INFO``, each in every spelling a router could route --
the model is stated in :mod:`hmacguard.guard.paths`. A path that cannot be interpreted is answered
400, never passed through.

Delivery semantics: the delivery's replay key is held while the application runs and settled when
the response has been produced whole (or, failing that, when the server closes it) -- committed if
the application started a response below 500, released if it raised (also midway through a
streamed response) or answered 5xx, so the sender's retry is processed
(:mod:`hmacguard.guard.replay`).
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hmacguard._mypyc import mypyc_attr
from hmacguard.errors import BodyMalformed, BodyTimeout, PathInvalid, RequestRejected
from hmacguard.guard.lane import Handoff
from hmacguard.guard.paths import wsgi_path
from hmacguard.guard.policy import (
    GUARD_KEY,
    HOLD_KEY,
    Accepted,
    ClientDisconnected,
    Guard,
    Outcome,
    ReadBody,
    Rejected,
    outer_hold,
    processed,
)
from hmacguard.guard.verifier import OuterHold, VerifiedBody
from hmacguard.http import EnvironHeaders, RequestHead

if TYPE_CHECKING:
    from hmacguard.guard.decision import DecisionSink
    from hmacguard.guard.ratelimit import RateLimiter
    from hmacguard.guard.verifier import VerifiedBody, Verifier

__all__ = ["WSGIGuard", "guard_environ", "head_from_environ", "request_paths", "status_line"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: environ key under which the application finds the VerifiedBody.
VERIFIED_KEY = "hmacguard.verified"

_monotonic = time.monotonic


def status_line(status: int) -> str:
    """``"413 Content Too Large"`` for 413, as WSGI's ``start_response`` wants it."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def head_from_environ(environ: dict[str, Any]) -> RequestHead:
    """The request head the decision core needs, from a WSGI environ (headers viewed, not copied)."""
    # Positional: keyword arguments cost a dict unpacking on every request.
    return RequestHead(
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("PATH_INFO", "") or "/",
        EnvironHeaders(environ),
        environ.get("REMOTE_ADDR"),
    )


class _SocketDeadline:
    """Bounds each blocking read by the time left, when the server lends us its socket."""

    __slots__ = ("_changed", "_saved", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock: socket.socket | None = sock
        self._saved: float | None = None
        self._changed = False

    def set(self, timeout: float | None) -> None:
        if self._sock is None or timeout is None:
            return
        try:
            if not self._changed:
                self._saved = self._sock.gettimeout()
                self._changed = True
            self._sock.settimeout(timeout)
        except OSError:
            self._sock = None

    def restore(self) -> None:
        if self._sock is not None and self._changed:
            with contextlib.suppress(OSError):
                self._sock.settimeout(self._saved)


def _held_in_memory(stream: Any, length: int) -> bool:
    """Whether gunicorn already holds the whole body in memory, so reading it cannot wait on the socket.

    gunicorn reads a request's head in pieces of 8 KiB, so a small body usually arrives with it and
    waits in the parser's read-ahead buffer; reading it from there needs no socket timeout, and
    setting and restoring one costs two ``ioctl`` system calls a request (about 1.5 us of a gunicorn
    worker's time, measured side by side in one worker: within the noise of bench_guard_rps.py,
    and real all the same). This looks at
    gunicorn's own objects (``Body`` -> ``LengthReader`` -> ``Unreader.buf``, as in gunicorn 27;
    tests/guard/test_gunicorn_read_ahead.py pins that shape, and tests/guard/test_review_today.py
    tries splits of a body between the head's read and the socket) and answers True only when each
    is exactly that and nothing has been read yet; any other server, shape or state answers False,
    and the timeout is set as before.
    """
    kind = type(stream)
    if kind.__name__ != "Body" or kind.__module__ != "gunicorn.http.body":
        return False
    try:
        reader = stream.reader
        if type(reader).__name__ != "LengthReader" or reader.length != length or stream.buf.tell():
            return False
        buffered = reader.unreader.buf
        if type(buffered) is not io.BytesIO:
            return False
        with buffered.getbuffer() as held:  # a view, released at once: gunicorn writes to it later
            return bool(held.nbytes >= length)
    except (AttributeError, TypeError, ValueError):
        return False


def guard_environ(guard: Guard, environ: dict[str, Any]) -> Outcome:
    """Run the guard on a WSGI request, reading ``wsgi.input``; never raises RequestRejected.

    Framework integrations call this (Flask, Django under WSGI); :class:`WSGIGuard` wraps it. A small
    delivery is first offered to the guard's single-read lane (:mod:`hmacguard.guard.lane`), which
    only accepts; anything it does not accept is decided by the general path.
    """
    stream = environ.get("wsgi.input")
    held_outside: OuterHold | None = None
    outer = environ.get(VERIFIED_KEY)
    if outer is not None:  # verified by a guard around this one (stacked guards, overlapping paths)
        if isinstance(outer, VerifiedBody) and not outer.closed:
            vouched = guard.vouched(outer, environ.get(GUARD_KEY))
            if vouched is not None:
                vouched.file.seek(0)  # whole, whatever read it in between
                guard.watch_outer_settling(environ.get(HOLD_KEY))
                return Accepted(vouched, [], None)  # the outer guard settles its delivery
            # Verified again from the body the outer guard verified, from its start, whatever a
            # middleware in between read or put in its place (as under ASGI: again_from_outer).
            stream = environ["wsgi.input"] = outer.file
            stream.seek(0)
            environ["CONTENT_LENGTH"] = str(outer.size)
        held_outside = outer_hold(environ.get(HOLD_KEY))
    first: Handoff | None = None
    # Not the lane when a guard around holds this delivery: the lane's hold could not tell that
    # hold from a replay's (Verifier.hold can).
    if stream is not None and guard.lane.open and held_outside is None:
        taken = _through_lane(guard, environ, stream)
        if isinstance(taken, Handoff):
            first = taken
        elif taken is not None:
            return taken
    deadline = _socket_deadline(environ)
    try:
        return _decide(guard, environ, stream, deadline, first, held_outside)
    finally:
        if deadline is not None:
            deadline.restore()


def _socket_deadline(environ: dict[str, Any], read: tuple[Any, int] | None = None) -> _SocketDeadline | None:
    """A deadline for the server's socket, when the server lends it (gunicorn); none either for
    ``read``, a ``(stream, length)`` read that gunicorn can serve from memory (:func:`_held_in_memory`)."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or (read is not None and _held_in_memory(*read)):
        return None
    return _SocketDeadline(sock)


def _through_lane(guard: Guard, environ: dict[str, Any], stream: Any) -> Outcome | Handoff | None:
    """Offer the request to the single-read lane: its outcome, the read it hands back to the general
    path, or ``None`` when the lane does not take the request (nothing has been read)."""
    lane = guard.lane
    length = lane.length_taken(environ.get("CONTENT_LENGTH"), "HTTP_CONTENT_ENCODING" in environ)
    if not length:
        return None
    now = guard.verifier.clock()
    claim = lane.claim_environ(environ, now)
    if claim is None:
        return None
    started = _monotonic()
    # The socket's timeout bounds this one read and is restored right after it: the general path,
    # if it decides after all, sets its own for any read it makes.
    deadline = None if "gunicorn.socket" not in environ else _socket_deadline(environ, (stream, length))
    try:
        if deadline is not None:
            deadline.set(guard.verifier.body_timeout)
        chunk = stream.read(length)
    except Exception as error:  # the general path answers it, as from its own read
        return Handoff(error, started, now)
    finally:
        if deadline is not None:
            deadline.restore()
    try:
        taken = lane.take(claim, chunk, length, started, now)
    except RequestRejected as error:  # the replay store's, final (lane.py)
        head = head_from_environ(environ)
        return guard.refuse_from_lane(error, head, length, started, connection_header=not _wsgiref(environ))
    if guard.sinks.active and isinstance(taken, Accepted):
        guard.report_lane_acceptance(head_from_environ(environ), taken, started)
    return taken


def _wsgiref(environ: dict[str, Any]) -> bool:
    """Whether the server is wsgiref, which forbids the ``Connection`` header (see the module docs)."""
    server = environ.get("SERVER_SOFTWARE")
    return isinstance(server, str) and server.startswith("WSGIServer/")


def _decide(
    guard: Guard,
    environ: dict[str, Any],
    stream: Any,
    deadline: _SocketDeadline | None,
    first: Handoff | None,
    held_outside: OuterHold | None = None,
) -> Outcome:
    """The general path: drive :meth:`Guard.process` with blocking calls."""
    process = guard.process(
        head_from_environ(environ),
        connection_header=not _wsgiref(environ),
        body_started=None if first is None else first.started,
        checked_at=None if first is None else first.checked_at,
        held_outside=held_outside,
    )
    try:
        effect = next(process)
        while True:
            if not isinstance(effect, ReadBody):
                # A StoreCall, the only other effect. Its refusals (503, 429, 409) go back in; any
                # other exception is no fault of the request's and propagates, as under ASGI.
                try:
                    result: Any = effect.func()
                except RequestRejected as error:
                    effect = process.throw(error)
                else:
                    effect = process.send(result)
                continue
            try:
                if first is not None:  # the lane's read, as this one's first
                    result, first = first.result, None
                    if isinstance(result, Exception):
                        raise result
                elif stream is None:
                    result = b""
                else:
                    if deadline is not None:
                        deadline.set(effect.timeout)
                    result = stream.read(effect.size)
            except RequestRejected as error:
                effect = process.throw(error)
            except TimeoutError:
                effect = process.throw(BodyTimeout("the request body arrived too slowly"))
            except OSError:
                # A reset connection, or a body that ended early (gunicorn's NoMoreData is an IOError).
                effect = process.throw(ClientDisconnected("the client closed the connection mid-body"))
            except Exception:
                # The server could not parse the body's framing (gunicorn's InvalidChunkSize,
                # ChunkMissingTerminator...): still the guard's refusal to answer and to charge.
                effect = process.throw(BodyMalformed("the request body's framing is malformed"))
            else:
                effect = process.send(result)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome
    except BaseException:
        process.close()
        raise


def request_paths(environ: dict[str, Any]) -> tuple[str, ...]:
    """The spellings of the request's path the guard matches: ``PATH_INFO``, then with its mount."""
    raw = environ.get("PATH_INFO") or "/"
    script = environ.get("SCRIPT_NAME") or ""
    if type(raw) is not str or type(script) is not str:  # PEP 3333 says str; a server that breaks it
        raise PathInvalid("the request path is not text")
    path = wsgi_path(raw)
    return (path, wsgi_path(script) + path) if script else (path,)


class _Settling:
    """Watches the application's answer, then settles the delivery and releases the body.

    ``start_response`` is wrapped to add the guard's headers and to see the status. The delivery
    is settled when the response has been produced whole -- at once when the application returns a
    list or tuple after starting the response (the usual small answer), else when the iteration
    ended -- or, failing that, by the response iterable's ``close()`` (PEP 3333: the server calls
    it at the end of every response), which also releases the body: work done in ``close()``
    (Werkzeug's ``call_on_close``), or a ``close()`` that never comes, cannot keep an answered
    delivery merely pending. An exception raised while iterating (a streamed response failing
    midway) releases it.
    """

    __slots__ = ("_accepted", "_closed", "_failed", "_iterable", "_start_response", "_whole", "status")

    def __init__(self, accepted: Accepted, start_response: StartResponse) -> None:
        self._accepted = accepted
        self._start_response = start_response
        self._iterable: Iterable[bytes] = ()
        self._closed = False
        self._failed = False
        self._whole = False
        self.status: int | None = None

    # Any: what the application passes, as it passes it (a tuple of headers, which gunicorn takes);
    # the compiled build would check a str and a list.
    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Any:
        code = status[:3]
        self.status = int(code) if code.isdigit() else 500
        extra = self._accepted.headers
        return self._start_response(status, [*headers, *extra] if extra else headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._iterable) if self._whole else self._watch()

    def _watch(self) -> Iterator[bytes]:
        try:
            yield from self._iterable
        except Exception:
            self._failed = True
            raise
        delivery = self._accepted.delivery
        if delivery is not None:
            delivery.settle(processed(self.status))

    def close(self, *, failed: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        accepted = self._accepted
        if self._whole:
            # Settled already, and a list or tuple has no close() of its own: only the body to release.
            accepted.body.file.close()
            return
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            try:
                delivery = accepted.delivery
                if delivery is not None and not delivery.settled:
                    delivery.settle(not (failed or self._failed) and processed(self.status))
            finally:
                accepted.body.file.close()

    def __enter__(self) -> _Settling:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


#: Response iterables that hold the whole answer once the application has returned them.
_PRODUCED_WHOLE = (list, tuple)


def install_body(environ: dict[str, Any], accepted: Accepted, guard: Guard) -> None:
    """Make ``environ`` describe the body ``guard`` accepted: ``wsgi.input``, ``CONTENT_LENGTH``,
    no coding, and the keys a guard nested inside reads (:func:`guard_environ`)."""
    body = accepted.body
    environ["wsgi.input"] = body.file
    environ["CONTENT_LENGTH"] = str(body.size)
    environ["wsgi.input_terminated"] = True
    if "HTTP_CONTENT_ENCODING" in environ or "HTTP_TRANSFER_ENCODING" in environ:
        environ.pop("HTTP_CONTENT_ENCODING", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ[VERIFIED_KEY] = body
    environ[GUARD_KEY] = guard
    if accepted.delivery is not None:  # else a guard around holds it (if any): its entry stays
        environ[HOLD_KEY] = (accepted.delivery, guard.verifier)


def send_rejection(rejected: Rejected, start_response: StartResponse) -> list[bytes]:
    problem = rejected.problem
    start_response(status_line(problem.status), list(problem.headers))
    return [problem.body]


def call_verified(
    app: WSGIApp,
    environ: dict[str, Any],
    start_response: StartResponse,
    accepted: Accepted,
    guard: Guard,
) -> Iterable[bytes]:
    """Call ``app`` with the body ``guard`` verified; settle the delivery and release the body at
    the end."""
    install_body(environ, accepted, guard)
    settling = _Settling(accepted, start_response)
    try:
        iterable = app(environ, settling.start_response)
    except BaseException:
        settling.close(failed=True)
        raise
    settling._iterable = iterable
    status = settling.status
    if status is not None and type(iterable) in _PRODUCED_WHOLE:
        # Already produced whole: settled now, with nothing to watch while the server sends it.
        settling._whole = True
        delivery = accepted.delivery
        if delivery is not None:
            delivery.settle(status < 500)  # processed(status), the status being known
    return settling


@mypyc_attr(allow_interpreted_subclasses=True)
class WSGIGuard:
    """WSGI middleware: requests to the protected paths reach ``app`` only once verified.

    Keyword-only configuration: ``verifier`` (required), ``rate_limiter``, ``paths``, ``methods``
    and ``on_decision`` as for :class:`~hmacguard.guard.policy.Guard`; ``route_check``, an optional
    ``callable(environ) -> bool`` saying whether the framework would route a request to a protected
    view (asked when no spelling of the path matches; the Django integration passes one).

    Trust model: which requests are protected is decided on every spelling of ``PATH_INFO`` and
    ``SCRIPT_NAME + PATH_INFO`` a router could route (:mod:`hmacguard.guard.paths`): wrap the
    application whose routes ``paths`` names, mounted anywhere. Unprotected requests pass through
    untouched; a path that cannot be interpreted gets 400. See the module docstring for what the
    application sees and for the timeout, connection and delivery semantics, and
    :mod:`hmacguard.guard.ratelimit` for the client-address trust model.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        verifier: Verifier,
        rate_limiter: RateLimiter | None = None,
        paths: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
        on_decision: DecisionSink | Iterable[DecisionSink] | None = None,
        route_check: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard(
            verifier, rate_limiter=rate_limiter, paths=paths, methods=methods, on_decision=on_decision
        )
        self.route_check = route_check

    def protects(self, environ: dict[str, Any]) -> bool:
        """Whether this request must be verified first; raises PathInvalid (see the class docs)."""
        check = self.route_check
        return self.guard.protects(
            environ.get("REQUEST_METHOD", "GET"),
            *request_paths(environ),
            # bool() of any answer, as pure Python took it (the compiled build cast it to bool).
            routed=None if check is None else lambda: bool(check(environ)),
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Every path protected: nothing to match, but the path is still checked to be text (it is
        # the refusal's "instance"), as request_paths() checks it otherwise.
        if not self.guard.protects_everything or type(environ.get("PATH_INFO", "")) is not str:
            try:
                protected = self.protects(environ)
            except RequestRejected as error:
                return send_rejection(self.guard.reject(error), start_response)
            if not protected:
                return self.app(environ, start_response)
        outcome = guard_environ(self.guard, environ)
        if isinstance(outcome, Rejected):
            return send_rejection(outcome, start_response)
        return call_verified(self.app, environ, start_response, outcome, self.guard)
