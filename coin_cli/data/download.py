"""Kline download for bulk history, on the project's one REST client (BinanceRESTClient):

- pages of `data.download_page_limit` (max 1000) from `startTime`, merged into the store as they
  arrive; the next run resumes after the last stored bar. Each page is written at once while writes
  are cheap; once a write costs more than a quarter of the fetching time since the last one, pages
  are grouped so the O(rows) rewrite never dominates. Ctrl-C, SIGTERM (or any error) flushes the
  pages held, so an interrupted run keeps every page it fetched and says how many candles it kept;
  a hard kill loses at most that short tail;
- the request policy (weight pacing by `X-MBX-USED-WEIGHT-1M`, 429/418 Retry-After, 5xx/timeout
  backoff with jitter, `binance.max_retries`, exit 4) and the still-open-candle drop are the REST
  client's (coin_cli/integrations/binance/rest.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.data.schema import CANDLE_COLUMNS, INT_COLUMNS, interval_ms, ms_to_iso
from coin_cli.errors import ExchangeError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from coin_cli.data.store import DatasetWriter
    from coin_cli.integrations.binance.rest import BinanceRESTClient

log = logging.getLogger("coin.data.download")

WRITE_SHARE = 4.0           # fetch for at least this many times the last write's duration between writes
SOURCE = "binance-rest"

Progress = Callable[[int, int | None, str | None], None]


@dataclass
class DownloadStats:
    pages: int = 0
    rows_received: int = 0
    rows_kept: int = 0
    open_dropped: int = 0
    retries: int = 0
    rate_waits: int = 0
    waited_s: float = 0.0
    max_used_weight: int = 0
    writes: int = 0
    segments: list[dict[str, Any]] = field(default_factory=list)


class KlineDownloader:
    """Pages klines for one symbol/interval into a DatasetWriter, through a BinanceRESTClient."""

    def __init__(self, rest: BinanceRESTClient, *, page_limit: int, progress: Progress | None = None):
        self.rest = rest
        self.page_limit = page_limit
        self.progress = progress
        self.stats = DownloadStats()
        self._pending: list[pd.DataFrame] = []
        self._writer: DatasetWriter | None = None
        self._last_flush = 0.0
        self._last_write_s = 0.0

    def download(self, symbol: str, interval: str, segments: list[tuple[int, int]],
                 writer: DatasetWriter) -> DownloadStats:
        """`run` in its own event loop. An interrupt (Ctrl-C, or SIGTERM's Terminated) comes back
        as the same exception class saying how many candles were kept."""
        import asyncio

        try:
            return asyncio.run(self.run(symbol, interval, segments, writer))
        except KeyboardInterrupt as exc:
            raise type(exc)(f"{self.stats.rows_kept} candles kept, run again to resume") from None

    async def run(self, symbol: str, interval: str, segments: list[tuple[int, int]],
                  writer: DatasetWriter) -> DownloadStats:
        """Fetch every [lo, hi] open-time segment (inclusive) and merge each page into `writer`."""
        total = sum((hi - lo) // interval_ms(interval) + 1 for lo, hi in segments)
        done = 0
        self._writer = writer
        self._last_flush = time.monotonic()
        try:
            await self.rest.connect()
            for lo, hi in segments:
                got = await self._segment(symbol, interval, lo, hi, done, total)
                self.stats.segments.append({"from": ms_to_iso(lo), "to": ms_to_iso(hi), "rows": got})
                done += got
        finally:  # also on Ctrl-C (the task is cancelled) and errors: keep every page fetched
            self._finish()
            await self.rest.close()
        if self.progress:
            self.progress(done, done, "done")
        return self.stats

    def _finish(self) -> None:
        """Flush the pages held (also on errors: keep every page fetched) and copy the REST stats."""
        self.flush()
        rest = self.rest.stats
        self.stats.retries, self.stats.rate_waits = rest.retries, rest.rate_waits
        self.stats.waited_s, self.stats.max_used_weight = rest.waited_s, rest.max_used_weight

    def flush(self) -> None:
        """Merge the pages held in memory into the store (one atomic write)."""
        import pandas as pd

        if not self._pending or self._writer is None:
            return
        frame = self._pending[0] if len(self._pending) == 1 else pd.concat(self._pending, ignore_index=True)
        began = time.monotonic()
        self._writer.add(frame)
        self.stats.rows_kept += len(frame)
        self._pending.clear()
        self._last_flush = time.monotonic()
        self._last_write_s = self._last_flush - began
        self.stats.writes += 1

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= WRITE_SHARE * self._last_write_s:
            self.flush()

    async def _segment(self, symbol: str, interval: str, lo: int, hi: int, done: int, total: int) -> int:
        cursor, got = lo, 0
        while cursor <= hi:
            page = await self.rest.klines(symbol, interval, cursor, hi, self.page_limit)
            if not page.received:
                break
            self.stats.pages += 1
            self.stats.rows_received += page.received
            self.stats.open_dropped += page.open_dropped
            if page.rows:
                frame, _ = klines_to_frame(page.rows, page.server_now_ms, where=f"klines page at {cursor}")
                self._pending.append(frame)
                self._maybe_flush()
                got += len(frame)
            last_open = int(page.last_open or cursor)
            if self.progress:
                self.progress(done + got, total, f"{symbol} {interval} {ms_to_iso(last_open)}")
            if page.received < self.page_limit or page.open_dropped or last_open < cursor:
                break
            cursor = last_open + 1
        return got


def klines_to_frame(rows: list[list[Any]], server_now_ms: int, where: str = "klines") -> tuple[pd.DataFrame, int]:
    """REST kline rows -> candle table, without the still-open candle; (frame, rows dropped)."""
    import pandas as pd

    try:
        grid = np.array(rows, dtype=object)
        if grid.ndim != 2 or grid.shape[1] < len(CANDLE_COLUMNS):
            raise ValueError(f"expected rows of 12 fields, got shape {grid.shape}")
        data = {name: grid[:, k].astype("int64" if name in INT_COLUMNS else "float64")
                for k, name in enumerate(CANDLE_COLUMNS)}
    except (ValueError, TypeError, IndexError) as exc:
        raise ExchangeError(f"{where}: malformed kline rows from the exchange ({exc})") from None
    frame = pd.DataFrame(data, copy=False)
    still_open = frame["close_time"].to_numpy() >= server_now_ms
    dropped = int(still_open.sum())
    if dropped:
        frame = frame.loc[~still_open].reset_index(drop=True)
    return frame, dropped


def plan_segments(start_ms: int | None, end_ms: int, interval: str,
                  stored: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Inclusive open-time ranges to fetch: before the stored range (when --start is earlier)
    and after its last bar (resume). `end_ms` is exclusive."""
    last_allowed = end_ms - 1
    if stored is None:
        if start_ms is None:
            raise UsageError("--start is required: the store has no candles for this dataset yet")
        return [(start_ms, last_allowed)] if start_ms <= last_allowed else []
    first, last = stored
    segments = []
    if start_ms is not None and start_ms < first:
        segments.append((start_ms, min(first - 1, last_allowed)))
    lo = last + 1 if start_ms is None else max(start_ms, last + 1)
    segments.append((lo, last_allowed))
    return [s for s in segments if s[0] <= s[1]]
