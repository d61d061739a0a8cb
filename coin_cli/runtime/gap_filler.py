"""GapFiller: closed candles only, de-duplicated by open time, strictly in order; a gap is filled
from a candle provider, in order, before the bar after it is processed.

The provider is the candle store for a replay (which can only return what the store has: real
exchange gaps stay gaps, exactly as TradingEnv sees them): `admit` fills from it at once. A live
stream has a `fetcher` (the store, then Binance REST klines) that is awaited in a TASK, never in
the bar loop: while a fill runs, the closed candles that arrive are held; when it is done the
task puts `GapFilled` on the runtime queue and `complete()` hands the fetched bars and then the
held ones to the loop, in order. After a reconnect (`StreamStatus(up=True)`) `request_fill(now)`
fetches every bar that closed meanwhile the same way. The next expected open is `close_time + 1`
of the last bar, which is also right for calendar-month candles.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from coin_cli.errors import CoinError
from coin_cli.runtime.events import GapFilled

if TYPE_CHECKING:
    from coin_cli.runtime.events import Candle
    from coin_cli.runtime.sources import CandleArrays

log = logging.getLogger("coin.runtime")


class CandleProvider(Protocol):
    def closed_candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        """Closed candles with start_ms <= open_time < end_ms, in order."""
        ...


class AsyncCandleProvider(Protocol):
    async def fetch_closed(self, start_ms: int, end_ms: int) -> list[Candle]:
        """Closed candles with start_ms <= open_time < end_ms, in order (may use the network)."""
        ...


class ArrayCandleProvider:
    """Candles from arrays read out of the store (the replay's own data)."""

    def __init__(self, arrays: CandleArrays) -> None:
        self.arrays = arrays

    def closed_candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        import numpy as np

        ot = self.arrays.open_time
        i = int(np.searchsorted(ot, start_ms, side="left"))
        j = int(np.searchsorted(ot, end_ms, side="left"))
        return self.arrays.candles(i, j) if j > i else []


FILL_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)   # between failed fills (after the REST client's own retries)


class GapFiller:
    def __init__(self, provider: CandleProvider | None, next_open: int | None = None, *,
                 fetcher: AsyncCandleProvider | None = None) -> None:
        self.provider = provider
        self.fetcher = fetcher
        self.next_open = next_open      # open time the next bar must have; None: take the first one
        self.duplicates = 0
        self.not_closed = 0
        self.gaps = 0
        self.filled = 0
        self.fill_failures = 0
        self.queue: asyncio.Queue[Any] | None = None   # where a finished fill announces itself
        self.task: asyncio.Task[None] | None = None     # the running fill
        self.fill_end: int | None = None                # the running (or last) fill covers < fill_end
        self.fetched: list[Candle] = []
        self.held: dict[int, Candle] = {}               # closed candles that arrived during a fill

    @property
    def filling(self) -> bool:
        return self.task is not None

    def attach(self, queue: asyncio.Queue[Any]) -> None:
        """The queue a finished fill puts `GapFilled` on (the runtime's own)."""
        self.queue = queue

    def request_fill(self, end_ms: int) -> bool:
        """Fetch every closed bar from next_open up to `end_ms` in a task (after a reconnect or at
        start); candles arriving meanwhile are held. False when nothing can be missing."""
        if self.fetcher is None or self.queue is None or self.next_open is None or self.task is not None:
            return False
        if end_ms <= self.next_open:
            return False
        self._start(self.next_open, end_ms)
        return True

    def _start(self, start: int, end: int) -> None:
        self.fill_end = end
        self.task = asyncio.get_running_loop().create_task(self._fill(start, end), name="gap-fill")

    async def _fill(self, start: int, end: int) -> None:
        attempt = 0
        while True:
            try:
                fetched = await self.fetcher.fetch_closed(start, end)  # type: ignore[union-attr]
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop waits for the fill rather than skip bars: try again
                self.fill_failures += 1
                delay = FILL_RETRY_S[min(attempt, len(FILL_RETRY_S) - 1)]
                log.warning("gap fill %d..%d failed (%s); retrying in %gs", start, end, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
        self.fetched = fetched
        await self.queue.put(GapFilled())  # type: ignore[union-attr]

    def complete(self) -> list[Candle]:
        """The bars a finished fill releases, in order: the fetched ones, then the held ones up to
        the next hole (which starts the next fill)."""
        self.task = None
        out: list[Candle] = []
        expect = self.next_open
        end = self.fill_end if self.fill_end is not None else 0
        for c in self.fetched:  # keep only closed, in-range, strictly increasing candles
            if c.closed and expect is not None and expect <= c.open_time < end:
                out.append(c)
                expect = c.close_time + 1
        self.fetched = []
        self.filled += len(out)
        self.gaps += bool(out)
        if out:
            log.info("gap filled: %d candle(s) from %s", len(out), type(self.fetcher).__name__)
        held = self.held
        for ot in sorted(held):
            c = held[ot]
            if expect is not None and ot < expect:
                self.duplicates += 1
            elif expect is None or ot == expect or ot <= end:  # at or inside what the fill covered
                out.append(c)
                expect = c.close_time + 1
            else:  # a hole after what this fill covered: fill it, keep the rest held
                self.next_open = expect
                for k in [k for k in held if k < ot]:
                    del held[k]
                self._start(expect, ot)
                return out
            del held[ot]
        self.next_open = expect
        return out

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def admit(self, candle: Candle) -> tuple[Candle, ...] | list[Candle]:
        """The candles to process now, in order: () for a duplicate, an old or an open candle;
        (candle,) normally; the provider's missing candles followed by `candle` after a gap."""
        if not candle.closed:
            self.not_closed += 1
            return ()
        nxt = self.next_open
        ot = candle.open_time
        if self.task is not None:  # a fill is running: hold what arrives, in open-time order
            if (nxt is not None and ot < nxt) or ot in self.held:
                self.duplicates += 1
            else:
                self.held[ot] = candle
            return ()
        if nxt is None or ot == nxt:
            self.next_open = candle.close_time + 1
            return (candle,)
        if ot < nxt:
            self.duplicates += 1
            return ()
        if self.fetcher is not None and self.queue is not None:  # live: fetch in a task, hold this bar
            self.held[ot] = candle   # the gap is counted when the fill brings bars (as after a reconnect)
            self._start(nxt, ot)
            return ()
        self.gaps += 1
        filled: list[Candle] = []
        if self.provider is not None:
            try:
                fetched = self.provider.closed_candles(nxt, ot)
            except CoinError as exc:  # process the bar we have rather than stall the loop
                log.warning("gap before bar %d not filled: %s", ot, exc)
                fetched = []
            expect = nxt
            for c in fetched:  # keep only closed, in-range, strictly increasing candles
                if c.closed and expect <= c.open_time < ot:
                    filled.append(c)
                    expect = c.close_time + 1
        self.filled += len(filled)
        if filled:
            log.info("gap before bar %d: filled %d candle(s) from %s", ot, len(filled), type(self.provider).__name__)
        self.next_open = candle.close_time + 1
        filled.append(candle)
        return filled

    def stats(self) -> dict[str, int]:
        out = {"gaps": self.gaps, "gap_bars_filled": self.filled, "duplicates_dropped": self.duplicates,
               "open_candles_dropped": self.not_closed}
        if self.fetcher is not None:
            out["gap_fill_failures"] = self.fill_failures
        return out
