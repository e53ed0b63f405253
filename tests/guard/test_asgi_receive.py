"""``_receive_within``: a message already held needs no timer; anything else is awaited as before.

The first step of ``receive()`` runs without a timeout; only when it suspends does the rest run
under one, resumed where it stopped. These are the promises of ``await receive()`` under a timeout
that this must keep, on a real asyncio loop: the message, whenever it comes within the timeout; a
TimeoutError on time otherwise, with the receive cancelled (its clean-up runs); errors raised before
or after suspending; a task cancelled from outside; awaitables that are not coroutines.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from hmacguard.integrations.asgi import _receive_within

MESSAGE = {"type": "http.request", "body": b"x", "more_body": False}


def never_answers(cleaned: list[str]) -> Any:
    """A receive that waits for ever, and notes in ``cleaned`` when it is ended (cancelled or closed)."""

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("receive ended")
        return MESSAGE

    return receive


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=10))


def test_a_held_message_comes_back_without_suspending_or_a_timer() -> None:
    async def receive() -> dict[str, Any]:
        return MESSAGE

    async def main() -> tuple[Any, int]:
        loop = asyncio.get_running_loop()
        before = len(loop._scheduled)  # type: ignore[attr-defined]
        message = await _receive_within(receive, 5.0)
        return message, len(loop._scheduled) - before  # type: ignore[attr-defined]

    assert run(main()) == (MESSAGE, 0)


@pytest.mark.parametrize("pause", [0.0, 0.05])
def test_a_message_that_comes_later_within_the_timeout_is_returned(pause: float) -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(pause)  # 0.0: a bare yield to the loop; 0.05: a timer of its own
        await asyncio.sleep(pause)
        return MESSAGE

    assert run(_receive_within(receive, 1.0)) == MESSAGE


def test_a_message_from_a_future_set_later_is_returned() -> None:
    async def main() -> Any:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.02, future.set_result, MESSAGE)
        return await _receive_within(lambda: future, 1.0)  # an awaitable that is not a coroutine

    assert run(main()) == MESSAGE


def test_no_message_within_the_timeout_is_a_timeout_error_on_time_and_the_receive_is_cancelled() -> None:
    cleaned: list[str] = []

    receive = never_answers(cleaned)

    async def main() -> float:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await _receive_within(receive, 0.1)
        return time.monotonic() - t0

    assert 0.09 < run(main()) < 2.0  # on time; the bound is loose for a loaded machine
    assert cleaned == ["receive ended"]


@pytest.mark.parametrize("suspend_first", [False, True])
def test_an_error_from_the_receive_propagates_before_or_after_suspending(suspend_first: bool) -> None:
    async def receive() -> dict[str, Any]:
        if suspend_first:
            await asyncio.sleep(0.01)
        raise ConnectionResetError("the server's receive failed")

    with pytest.raises(ConnectionResetError):
        run(_receive_within(receive, 1.0))


def test_a_task_cancelled_from_outside_while_waiting_is_cancelled_and_the_receive_cleaned_up() -> None:
    cleaned: list[str] = []

    receive = never_answers(cleaned)

    async def main() -> None:
        task = asyncio.ensure_future(_receive_within(receive, 30.0))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert cleaned == ["receive ended"]


def test_a_receive_that_turns_the_cancellation_into_a_message_gives_what_a_plain_await_gives() -> None:
    """A server whose receive answers a cancellation with a disconnect message: asyncio.timeout then
    lets that message through (nothing was raised); so must this."""

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return {"type": "http.disconnect"}
        return MESSAGE

    async def plain() -> Any:
        try:
            async with asyncio.timeout(0.05):
                return await receive()
        except TimeoutError:
            return "timeout"

    async def ours() -> Any:
        try:
            return await _receive_within(receive, 0.05)
        except TimeoutError:
            return "timeout"

    assert run(ours()) == run(plain()) == {"type": "http.disconnect"}


def test_closing_the_waiting_coroutine_closes_the_receive() -> None:
    """A coroutine dropped while it waits (closed, not cancelled) leaves no receive running."""
    cleaned: list[str] = []

    receive = never_answers(cleaned)

    async def main() -> None:
        waiting = _receive_within(receive, 30.0)
        future = waiting.send(None)  # runs until the receive suspends
        assert future is not None
        waiting.close()

    run(main())
    assert cleaned == ["receive ended"]
