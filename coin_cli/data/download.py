"""Kline download through python-binance's AsyncClient, built for bulk history:

- pages of `data.download_page_limit` (max 1000) from `startTime`, merged into the store as they
  arrive; the next run resumes after the last stored bar. Each page is written at once while writes
  are cheap; once a write costs more than a quarter of the fetching time since the last one, pages
  are grouped so the O(rows) rewrite never dominates. Ctrl-C (or any error) flushes the pages held,
  so an interrupted run keeps every page it fetched; a hard kill loses at most that short tail;
- paced by the `X-MBX-USED-WEIGHT-1M` header (waits for the next minute only when the next page
  would pass `data.max_weight_per_minute`), never by fixed sleeps;
- 429/418 wait the server's `Retry-After`; 5xx, timeouts and connection errors back off
  exponentially; `binance.max_retries` failures in a row are an ExchangeError (exit 4);
- the still-open candle (close_time in the future, by server time) is dropped.
The endpoint is `binance.api_url`, set on a subclass of AsyncClient (python-binance has no base_url).
"""

from __future__ import annotations

import asyncio
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

log = logging.getLogger("coin.data.download")

KLINES_WEIGHT = 2
RETRY_AFTER_CAP_S = 300.0   # a longer ban (418 can last days) fails the run instead of blocking it
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
WRITE_SHARE = 4.0           # fetch for at least this many times the last write's duration between writes
MINUTE_MS = 60_000
SOURCE = "binance-rest"

Progress = Callable[[int, int | None, str | None], None]


def client_class(api_url: str) -> type:
    """AsyncClient with its REST base set to `api_url` (e.g. http://127.0.0.1:PORT/api)."""
    from binance import AsyncClient

    return type("ConfiguredAsyncClient", (AsyncClient,), {"API_URL": api_url.rstrip("/")})


@dataclass
class DownloadStats:
    pages: int = 0
    rows_received: int = 0
    open_dropped: int = 0
    retries: int = 0
    rate_waits: int = 0
    waited_s: float = 0.0
    max_used_weight: int = 0
    writes: int = 0
    segments: list[dict[str, Any]] = field(default_factory=list)


class KlineDownloader:
    """Pages klines for one symbol/interval into a DatasetWriter."""

    def __init__(self, api_url: str, *, timeout: float, max_retries: int, page_limit: int,
                 max_weight_per_minute: int, progress: Progress | None = None):
        self.api_url = api_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.page_limit = page_limit
        self.max_weight = max_weight_per_minute
        self.progress = progress
        self.stats = DownloadStats()
        self._client: Any = None
        self._used_weight = 0
        self._pending: list[pd.DataFrame] = []
        self._writer: DatasetWriter | None = None
        self._last_flush = 0.0
        self._last_write_s = 0.0

    async def run(self, symbol: str, interval: str, segments: list[tuple[int, int]],
                  writer: DatasetWriter) -> DownloadStats:
        """Fetch every [lo, hi] open-time segment (inclusive) and merge each page into `writer`."""
        total = sum((hi - lo) // interval_ms(interval) + 1 for lo, hi in segments)
        done = 0
        self._writer = writer
        self._last_flush = time.monotonic()
        self._client = await self._retrying("connect", self._connect)
        try:
            for lo, hi in segments:
                got = await self._segment(symbol, interval, lo, hi, done, total)
                self.stats.segments.append({"from": ms_to_iso(lo), "to": ms_to_iso(hi), "rows": got})
                done += got
        finally:
            self.flush()  # also on Ctrl-C (CancelledError) and errors: keep every page fetched
            await self._client.close_connection()
        if self.progress:
            self.progress(done, done, "done")
        return self.stats

    async def _connect(self) -> Any:
        # create() calls GET /api/v3/ping and /api/v3/time (server clock offset)
        return await client_class(self.api_url).create(requests_params={"timeout": self.timeout})

    def flush(self) -> None:
        """Merge the pages held in memory into the store (one atomic write)."""
        import pandas as pd

        if not self._pending or self._writer is None:
            return
        frame = self._pending[0] if len(self._pending) == 1 else pd.concat(self._pending, ignore_index=True)
        began = time.monotonic()
        self._writer.add(frame)
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
            params = {"symbol": symbol, "interval": interval, "startTime": cursor, "endTime": hi,
                      "limit": self.page_limit}
            rows = await self._retrying("klines", lambda p=params: self._client.get_klines(**p))
            self._note_weight()
            if not rows:
                break
            self.stats.pages += 1
            self.stats.rows_received += len(rows)
            frame, still_open = klines_to_frame(rows, self.server_now_ms(), where=f"klines page at {cursor}")
            self.stats.open_dropped += still_open
            if len(frame):
                self._pending.append(frame)
                self._maybe_flush()
                got += len(frame)
            if self.progress:
                self.progress(done + got, total, f"{symbol} {interval} {ms_to_iso(int(rows[-1][0]))}")
            last_open = int(rows[-1][0])
            if len(rows) < self.page_limit or still_open or last_open < cursor:
                break
            cursor = last_open + 1
            await self._pace()
        return got

    def server_now_ms(self) -> int:
        offset = getattr(self._client, "timestamp_offset", 0) or 0
        return int(time.time() * 1000) + int(offset)

    def _note_weight(self) -> None:
        response = getattr(self._client, "response", None)
        used = _int_header(response, "X-MBX-USED-WEIGHT-1M")
        self._used_weight = used or 0
        self.stats.max_used_weight = max(self.stats.max_used_weight, self._used_weight)

    async def _pace(self) -> None:
        """Wait for the next weight window only when the next page would pass the budget."""
        used = self._used_weight
        if used + KLINES_WEIGHT <= self.max_weight:
            return
        now = self.server_now_ms()
        wait = (MINUTE_MS - now % MINUTE_MS + 50) / 1000.0
        log.info("used weight %d of %d this minute: waiting %.1f s for the next window", used, self.max_weight, wait)
        self.stats.rate_waits += 1
        self.stats.waited_s += wait
        await asyncio.sleep(wait)

    async def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        import aiohttp
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        attempt = 0
        while True:
            try:
                return await call()
            except BinanceAPIException as exc:
                status = int(exc.status_code)
                if status in (429, 418):
                    wait = _retry_after(exc.response) or BACKOFF_BASE_S * 2**attempt
                    if wait > RETRY_AFTER_CAP_S:
                        raise ExchangeError(f"{self.api_url}: HTTP {status} (code {exc.code}): Binance asks to wait "
                                            f"{wait:.0f} s (IP rate limit or ban); try again later") from None
                    problem = f"HTTP {status} (code {exc.code}), Retry-After {wait:g} s"
                elif status >= 500:
                    wait, problem = _backoff(attempt), f"HTTP {status}"
                elif exc.code == -1121:
                    raise UsageError(
                        f"{self.api_url}: Binance says {exc.message} (code -1121): check --symbol") from None
                else:
                    raise ExchangeError(
                        f"{self.api_url}: {what}: HTTP {status} (code {exc.code}): {exc.message}") from None
            except (aiohttp.ClientError, TimeoutError, BinanceRequestException) as exc:
                wait, problem = _backoff(attempt), f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            attempt += 1
            if attempt > self.max_retries:
                raise ExchangeError(f"{self.api_url}: {what} failed after {self.max_retries} retries ({problem})")
            self.stats.retries += 1
            self.stats.waited_s += wait
            log.warning("%s: %s; retry %d/%d in %.2f s", what, problem, attempt, self.max_retries, wait)
            await asyncio.sleep(wait)


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


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)


def _retry_after(response: Any) -> float | None:
    value = _header(response, "Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int_header(response: Any, name: str) -> int | None:
    value = _header(response, name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    return None if headers is None else headers.get(name)
