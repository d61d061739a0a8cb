"""Awaiting third-party sockets (python-binance) without letting them hold a cancel or an exit.

On Python 3.11 `asyncio.wait_for` returns the inner result when the inner call finished in the same
loop step as the cancel of the waiting task: the cancel is lost (CPython gh-86296), and a socket
read loop that lost it reads on forever, so `await task` after `task.cancel()` never returns. And a
python-binance socket closing while it reconnects can ignore its own cancel, which wait_for then
waits for without end. These helpers await through `asyncio.wait`, which never swallows the
caller's cancel, and abandon (cancel, not await) what does not finish in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

TIMED_OUT = object()   # what `within` returns when the awaitable did not finish in time


async def within(awaitable: Any, timeout: float) -> Any:
    """The result of `awaitable` (its exception raised), or TIMED_OUT after `timeout` s (it is then
    cancelled and abandoned). A cancel of the caller always propagates."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        return TIMED_OUT
    return task.result()


async def bounded(awaitable: Any, timeout: float) -> None:
    """Await `awaitable` for at most `timeout` s, its errors ignored (closing sockets)."""
    try:
        await within(awaitable, timeout)
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            raise   # ours: propagate; the awaitable's own cancel is just "it did not finish"
    except Exception:   # a close that fails has nothing left to do
        pass


async def stop_task(task: asyncio.Task[Any], timeout: float) -> bool:
    """Cancel `task` and wait at most `timeout` s for it to end; False when it is left running."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done and not task.cancelled():
        task.exception()   # retrieved: no "exception was never retrieved" at exit
    return bool(done)
