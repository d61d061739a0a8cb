"""coin_cli.aio: a cancel that arrives in the same loop step as the awaited call's result is never
lost, and a call that ignores its cancel is abandoned, not awaited forever."""

from __future__ import annotations

import asyncio
import sys

from coin_cli.aio import TIMED_OUT, bounded, stop_task, within


async def _reader(wait, ready: asyncio.Event, reads: list[int]) -> None:
    """A socket read loop: await one message at a time, for ever (a cancel must end it)."""
    while True:
        async def message() -> int:
            await ready.wait()
            return 1
        reads.append(await wait(message()))
        ready.clear()


async def _cancel_as_message_arrives(wait) -> tuple[bool, list[int]]:
    ready, reads = asyncio.Event(), []
    task = asyncio.create_task(_reader(wait, ready, reads))
    await asyncio.sleep(0)          # the reader is waiting for its message
    ready.set()                     # the message arrives ...
    task.cancel()                   # ... in the same step as the cancel
    done, _ = await asyncio.wait({task}, timeout=0.5)
    if not done:
        task.cancel()               # leave nothing running (it is waiting again: this one lands)
        await asyncio.wait({task}, timeout=0.5)
    return bool(done) and task.cancelled(), reads


def test_within_never_loses_the_callers_cancel() -> None:
    stopped, _ = asyncio.run(_cancel_as_message_arrives(lambda aw: within(aw, 10.0)))
    assert stopped


def test_the_race_is_real_for_wait_for_on_this_python() -> None:
    """The control: the same race through asyncio.wait_for loses the cancel on 3.11 (gh-86296)."""
    stopped, reads = asyncio.run(_cancel_as_message_arrives(lambda aw: asyncio.wait_for(aw, 10.0)))
    if sys.version_info < (3, 12):
        assert not stopped and reads == [1]


def test_a_call_that_ignores_its_cancel_is_abandoned() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:   # ignores its first cancel (python-binance closing while it
            await asyncio.sleep(10)       # reconnects); asyncio.run's clean-up cancel ends it

    async def main() -> tuple[object, bool, float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await within(stubborn(), 0.05)
        await bounded(stubborn(), 0.05)
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopped = await stop_task(task, 0.05)
        return result, stopped, loop.time() - began

    result, stopped, elapsed = asyncio.run(main())
    assert result is TIMED_OUT and stopped is False
    assert elapsed < 5.0   # three 0.05 s bounds, not forever


def test_within_returns_the_result_and_raises_the_error() -> None:
    async def value() -> int:
        return 7

    async def boom() -> None:
        raise ValueError("socket closed")

    async def main() -> tuple[int, str]:
        try:
            await within(boom(), 1.0)
        except ValueError as exc:
            return await within(value(), 1.0), str(exc)
        return 0, ""

    assert asyncio.run(main()) == (7, "socket closed")
