"""Market sources: they put events on the runtime's asyncio.Queue and end with EndOfStream.

`MarketSource` is the seam: the replay of stored candles lives here; the Binance kline
websocket source (a later issue) implements the same protocol, sends single `Candle`s with
`closed` from `k.x`, and `StreamStatus(up=False)` when its socket drops. The consumer does the
rest (closed candles only, de-duplication, gap filling), so every source gets it for free.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from coin_cli.runtime.events import Candle, CandleBatch, EndOfStream, MarketEvent

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REPLAY_BATCH = 512      # candles per queue item: the queue then costs nothing per bar
QUEUE_ITEMS = 64        # bounded queue: a fast source waits for the consumer, memory stays flat


class MarketSource(Protocol):
    name: str

    async def run(self, queue: asyncio.Queue[MarketEvent]) -> None:
        """Put events on `queue` until the data ends (EndOfStream) or the task is cancelled."""
        ...

    def describe(self) -> str: ...


class CandleArrays:
    """The candle columns the runtime needs, as numpy arrays (the frame itself is dropped)."""

    COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time")

    def __init__(self, open_time: np.ndarray, open: np.ndarray, high: np.ndarray, low: np.ndarray,
                 close: np.ndarray, volume: np.ndarray, close_time: np.ndarray) -> None:
        self.open_time, self.open, self.high, self.low = open_time, open, high, low
        self.close, self.volume, self.close_time = close, volume, close_time

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> CandleArrays:
        import numpy as np

        cols = {c: frame[c].to_numpy(dtype="int64" if c.endswith("_time") else "float64", copy=True)
                for c in cls.COLUMNS}
        order = np.argsort(cols["open_time"], kind="stable")
        if len(order) and not (order == np.arange(len(order))).all():
            cols = {c: v[order] for c, v in cols.items()}
        return cls(**cols)

    def __len__(self) -> int:
        return len(self.open_time)

    def index_after(self, open_time: int | None) -> int:
        """Index of the first candle opening strictly after `open_time`."""
        if open_time is None:
            return 0
        import numpy as np

        return int(np.searchsorted(self.open_time, open_time, side="right"))

    def columns(self, start: int, stop: int) -> tuple[list[Any], ...]:
        """Rows start..stop as Python lists, one per COLUMNS entry (Candle's argument order)."""
        return tuple(getattr(self, c)[start:stop].tolist() for c in self.COLUMNS)

    def candles(self, start: int, stop: int) -> list[Candle]:
        return [Candle(*row) for row in zip(*self.columns(start, stop), strict=True)]

    def first_open(self) -> int | None:
        return int(self.open_time[0]) if len(self) else None

    def last_open(self) -> int | None:
        return int(self.open_time[-1]) if len(self) else None


class ReplaySource:
    """Stored candles in order: as fast as the consumer takes them, or `speed` bars a second."""

    name = "replay"

    def __init__(self, arrays: CandleArrays, *, after: int | None = None, max_bars: int | None = None,
                 speed: float = 0.0, batch: int = REPLAY_BATCH) -> None:
        self.arrays = arrays
        self.start = arrays.index_after(after)
        self.stop = len(arrays) if max_bars is None else min(len(arrays), self.start + max_bars)
        self.speed = speed
        self.batch = batch

    @property
    def bars(self) -> int:
        return max(0, self.stop - self.start)

    def describe(self) -> str:
        pace = "as fast as possible" if self.speed <= 0 else f"{self.speed:g} bars/s"
        return f"replay of {self.bars} stored candles, {pace}"

    async def run(self, queue: asyncio.Queue[MarketEvent]) -> None:
        arrays, i, stop = self.arrays, self.start, self.stop
        if self.speed <= 0:
            while i < stop:
                j = min(stop, i + self.batch)
                await queue.put(CandleBatch(arrays.columns(i, j)))
                i = j
        else:
            period = 1.0 / self.speed
            due = time.monotonic()
            while i < stop:
                j = min(stop, i + 256)
                for candle in arrays.candles(i, j):
                    await queue.put(candle)
                    due += period
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                i = j
        await queue.put(EndOfStream("end of replay data"))


class StreamHealth:
    """The market stream's state for the status line, and STREAM_DOWN once it has stayed down
    for `after_s` seconds (a reconnect that succeeds within it is only logged)."""

    def __init__(self, alerts: Any, after_s: float) -> None:
        self.alerts = alerts
        self.after_s = after_s
        self.down_since: float | None = None
        self.detail = ""
        self.drops = 0
        self.alerted = False
        self._timer: asyncio.TimerHandle | None = None

    def down(self, detail: str) -> None:
        if self.down_since is not None:
            return
        self.down_since, self.detail = time.monotonic(), detail
        self.drops += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.after_s <= 0:
            self._fire()
        else:
            self._timer = loop.call_later(self.after_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.down_since is not None:
            self.alerted = True
            self.alerts.stream_down(f"{self.detail} (down {time.monotonic() - self.down_since:.0f}s)")

    def up(self) -> None:
        self.close()
        self.down_since = None
        if self.alerted:
            self.alerted = False
            self.alerts.stream_up()

    def describe(self) -> str:
        if self.down_since is None:
            return "up" if not self.drops else f"up ({self.drops} reconnect{'s' if self.drops > 1 else ''})"
        return f"down {time.monotonic() - self.down_since:.0f}s"

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
