"""Drive an application in-process: WSGI or ASGI (detected), Django by settings, or any callable.

Each request is built the way a real server would hand it over, because what the app retains depends
on it: the body is copied out of the "socket" on every read (a WSGI ``wsgi.input`` or ASGI ``receive``
returns fresh bytes each time, so a body the app keeps is a new allocation made under the app's own
frames), headers are signed per request (a new delivery id each time, as providers send), and the
response is consumed and closed. Nothing here touches the network.

A :class:`Workload` is the unit the heap measurement repeats: ``run(n)`` performs ``n`` requests (or
calls) and ``close()`` releases what it holds (an event loop, an ASGI lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hmacguard.errors import ConfigurationError, TargetError
from hmacguard.leaks.wire import AsgiExchange, WsgiResponse, asgi_scope, wsgi_environ
from hmacguard.schemes import get_scheme, sign_body

__all__ = [
    "AppWorkload",
    "CallableWorkload",
    "Interface",
    "Recipe",
    "Workload",
    "detect_interface",
    "load_django",
    "load_target",
    "make_workload",
]

Interface = Literal["wsgi", "asgi"]
#: The largest body the harness will build: requests are in-process, but memory is still memory.
MAX_BODY = 256 * 1024 * 1024


@dataclass(frozen=True)
class Recipe:
    """One request, repeated: what to send and how to sign it."""

    method: str = "POST"
    path: str = "/webhook"
    headers: Mapping[str, str] = field(default_factory=dict)
    body_size: int = 64 * 1024
    scheme: str | None = None
    secret: str | None = None
    content_type: str = "application/json"
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not 0 <= self.body_size <= MAX_BODY:
            raise ConfigurationError(f"body size must be between 0 and {MAX_BODY} bytes")
        if not self.path.startswith("/"):
            raise ConfigurationError(f"path must start with '/': {self.path!r}")
        if not self.method.isascii() or not self.method.isalpha():
            raise ConfigurationError(f"not an HTTP method: {self.method!r}")
        if (self.scheme is None) != (self.secret is None):
            raise ConfigurationError("signing needs both a scheme and a secret")
        if self.scheme is not None:
            get_scheme(self.scheme)  # fail now, naming the choices, rather than on request one

    def body(self, seq: int = 0) -> bytes:
        """A JSON document of exactly ``body_size`` bytes, different for every ``seq``.

        Real deliveries differ, and a cache keyed by the body would hit on every repeat of one body
        and hide exactly the growth we are looking for.
        """
        n = self.body_size
        stamp = b"%016d" % (seq % 10**16)
        if n < 40:
            return (stamp * (n // 16 + 1))[-n:] if n else b""
        return b'{"seq": "' + stamp + b'", "pad": "' + b"a" * (n - 38) + b'"}'

    def request_headers(self, body: bytes) -> dict[str, str]:
        """Headers for one request: signed afresh, so per-delivery ids differ as they do in real life."""
        out = {"Content-Type": self.content_type}
        if self.scheme is not None and self.secret is not None:
            out.update(sign_body(self.scheme, self.secret, body))
        out.update(self.headers)
        return out


class Workload(Protocol):
    """Something the heap measurement can repeat."""

    #: What one unit is called in reports ("request", "call").
    unit: str

    def run(self, n: int) -> None: ...

    def close(self) -> None: ...

    def summary(self) -> dict[str, int]: ...


# --- loading -------------------------------------------------------------------------------------


def load_target(spec: str) -> object:
    """Import ``module:attr`` (attr may be dotted); the working directory is importable, as with gunicorn."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"target must look like module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing: say so in one line
        raise TargetError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def load_django(settings_module: str) -> object:
    """Django's WSGI handler for a settings module, set up the way ``wsgi.py`` does it."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        from django.core.wsgi import get_wsgi_application
    except ImportError:
        raise ConfigurationError("--django-settings needs Django installed") from None
    try:
        return get_wsgi_application()
    except Exception as exc:
        raise TargetError(f"Django setup with {settings_module!r} failed: {exc}") from None


def _is_coroutine_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj) or asyncio.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - we need the bound __call__, not callable()
    return call is not None and (inspect.iscoroutinefunction(call) or asyncio.iscoroutinefunction(call))


def _positional_count(obj: object) -> int | None:
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in sig.parameters.values() if p.kind in kinds)


def detect_interface(app: object) -> Interface:
    """ASGI if calling the app gives a coroutine (``async def __call__``), WSGI if it takes two arguments."""
    if not callable(app):
        raise ConfigurationError(f"{app!r} is not callable, so not a WSGI or ASGI application")
    if _is_coroutine_callable(app):
        return "asgi"
    count = _positional_count(app)
    if count == 3:
        # An ASGI app written as a plain function returning an awaitable (some middleware do this).
        return "asgi"
    if count in (2, None):
        return "wsgi"
    raise ConfigurationError(f"{app!r} takes {count} positional arguments: a WSGI app takes 2, an ASGI app 3")


# --- workloads -----------------------------------------------------------------------------------


class AppWorkload:
    """Sends ``recipe`` to a WSGI or ASGI app, in-process; counts statuses and exceptions."""

    unit = "request"

    def __init__(self, app: object, recipe: Recipe, interface: Interface | None = None) -> None:
        self.app = app
        self.recipe = recipe
        self.interface: Interface = interface or detect_interface(app)
        self._sent = 0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifespan: _Lifespan | None = None
        if self.interface == "asgi":
            self._loop = asyncio.new_event_loop()
            self._lifespan = _Lifespan(app)
            self._loop.run_until_complete(self._lifespan.startup())

    def run(self, n: int) -> None:
        if self.interface == "wsgi":
            for _ in range(n):
                self._wsgi_once()
        else:
            if self._loop is None:
                raise ConfigurationError("workload already closed")
            self._loop.run_until_complete(self._asgi_many(n))

    def summary(self) -> dict[str, int]:
        out = {str(k): v for k, v in sorted(self.statuses.items())}
        out.update({f"raised {k}": v for k, v in sorted(self.errors.items())})
        return out

    def close(self) -> None:
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        try:
            if self._lifespan is not None:
                loop.run_until_complete(self._lifespan.shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _next_body(self) -> bytes:
        self._sent += 1
        return self.recipe.body(self._sent)

    # WSGI ---------------------------------------------------------------------------------------

    def _wsgi_once(self) -> None:
        body = self._next_body()
        headers = self.recipe.request_headers(body)
        environ = wsgi_environ(self.recipe.method, self.recipe.path, self.recipe.host, body, headers)
        response = WsgiResponse()
        app: Callable[..., Iterable[bytes]] = self.app  # type: ignore[assignment]
        try:
            result = app(environ, response.start_response)
            try:
                for _chunk in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # the app's own failure is a result to count, not our crash
            self.errors[type(exc).__name__] += 1
            return
        self.statuses[response.status] += 1

    # ASGI ---------------------------------------------------------------------------------------

    async def _asgi_many(self, n: int) -> None:
        for _ in range(n):
            await self._asgi_once()

    async def _asgi_once(self) -> None:
        body = self._next_body()
        headers = self.recipe.request_headers(body)
        scope = asgi_scope(self.recipe.method, self.recipe.path, self.recipe.host, len(body), headers)
        exchange = AsgiExchange(body)
        app: Callable[..., Awaitable[None]] = self.app  # type: ignore[assignment]
        try:
            await app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            return
        finally:
            exchange.finish()
        self.statuses[exchange.status] += 1


class _Lifespan:
    """ASGI lifespan startup/shutdown, so apps that open resources at startup run as under uvicorn."""

    def __init__(self, app: object) -> None:
        self.app = app
        self.supported = True
        self._task: asyncio.Task[None] | None = None
        # Since Python 3.10 a queue binds to the running loop on first use, not at creation.
        self._inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def _run(self) -> None:
        app: Callable[..., Awaitable[None]] = self.app  # type: ignore[assignment]
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await app(scope, self._inbox.get, self._outbox.put)
        except Exception:
            # Apps without lifespan support raise on the unknown scope type; uvicorn's "auto" mode
            # treats that as "no lifespan", and so do we.
            self.supported = False
        await self._outbox.put({"type": "lifespan.ended"})

    async def _exchange(self, message: str) -> None:
        if not self.supported:
            return
        await self._inbox.put({"type": message})
        reply = await self._outbox.get()
        kind = str(reply.get("type", ""))
        if kind.endswith(".failed"):
            raise TargetError(f"ASGI {message} failed: {reply.get('message', '')}".rstrip(": "))

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._exchange("lifespan.startup")

    async def shutdown(self) -> None:
        await self._exchange("lifespan.shutdown")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class CallableWorkload:
    """Calls ``fn()`` repeatedly; coroutine functions run on a private event loop."""

    unit = "call"

    def __init__(self, fn: Callable[[], object]) -> None:
        if not callable(fn):
            raise ConfigurationError(f"{fn!r} is not callable")
        self.fn = fn
        self.calls = 0
        self.errors: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        if _is_coroutine_callable(fn):
            self._loop = asyncio.new_event_loop()

    def run(self, n: int) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._many(n))
            return
        for _ in range(n):
            result = self.fn()
            if inspect.isawaitable(result):
                raise ConfigurationError(f"{self.fn!r} returned an awaitable but is not a coroutine function")
        self.calls += n

    async def _many(self, n: int) -> None:
        for _ in range(n):
            await self.fn()  # type: ignore[misc]
        self.calls += n

    def summary(self) -> dict[str, int]:
        return {"calls": self.calls}

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def make_workload(
    target: object, recipe: Recipe | None = None, *, interface: Interface | Literal["call"] | None = None
) -> AppWorkload | CallableWorkload:
    """An app (WSGI/ASGI) gets requests; a callable taking no arguments (or ``interface="call"``) calls."""
    if interface == "call":
        if recipe is not None:
            raise ConfigurationError("a recipe describes requests; a plain callable takes none")
        return CallableWorkload(target)  # type: ignore[arg-type]
    if recipe is None and interface is None and _positional_count(target) == 0:
        return CallableWorkload(target)  # type: ignore[arg-type]
    return AppWorkload(target, recipe or Recipe(), interface)
