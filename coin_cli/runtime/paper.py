"""Paper mode's market side: the candle store kept up to date over Binance REST, and the kline stream.

- `prepare_market` runs BEFORE the ledger is opened: it reaches the market (so an unreachable one
  is an exit 4 with nothing written), takes the symbol's exchange filters for the ExecutionModel
  (and so the ledger identity) and fetches the warm-up history missing from the store up to now,
  so the features are warm at the first live bar.
- `StoreRestFetcher` is GapFiller's async provider: the store first, then REST for what the store
  lacks; what REST returns is merged into the store (full rows, atomically, DatasetWriter).
- `CandleRecorder` appends the stream's closed candles the runtime processed to the store, in
  batches flushed just before each ledger commit (a restart then re-warms from the store).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from coin_cli.runtime.events import Candle

if TYPE_CHECKING:
    from collections.abc import Callable

    from coin_cli.config import Settings
    from coin_cli.data.store import DatasetWriter
    from coin_cli.runtime.sources import CandleArrays

log = logging.getLogger("coin.runtime")

SOURCE = "binance-rest"
STREAM_SOURCE = "binance-stream"
RECORD_EVERY_S = 60.0   # the stream's candles are merged into the store at most this often


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreRestFetcher:
    """Closed candles for [start, end): from the store's frame, then REST klines for the rest.
    One BinanceRESTClient, connected on first use inside the runtime's event loop."""

    def __init__(self, settings: Settings, writer: DatasetWriter, budget: Any = None) -> None:
        self.settings = settings
        self.writer = writer
        self.budget = budget
        self.symbol, self.interval = writer.symbol, writer.interval
        self.rest_fetches = 0
        self._rest: Any = None

    async def fetch_closed(self, start_ms: int, end_ms: int) -> list[Candle]:
        from coin_cli.data.schema import interval_ms

        stored = self.stored(start_ms, end_ms)
        after = stored[-1].close_time + 1 if stored else start_ms
        if after + interval_ms(self.interval) <= end_ms + 1:  # a bar may have closed that the store lacks
            if self._rest is None:
                self._rest = await rest_client(self.settings, self.budget).connect()
            await fetch_into_store(self._rest, self.writer, after, end_ms)
            self.rest_fetches += 1
            stored = self.stored(start_ms, end_ms)
        return stored

    def stored(self, start_ms: int, end_ms: int) -> list[Candle]:
        frame = self.writer.frame
        if frame is None or not len(frame):
            return []
        from coin_cli.runtime.gap_filler import ArrayCandleProvider
        from coin_cli.runtime.sources import CandleArrays

        return ArrayCandleProvider(CandleArrays.from_frame(frame)).closed_candles(start_ms, end_ms)

    async def aclose(self) -> None:
        if self._rest is not None:
            rest, self._rest = self._rest, None
            await rest.close()


def rest_client(settings: Settings, budget: Any = None) -> Any:
    """Market-data REST; `budget` (a WeightBudget) shared with the account side in live mode."""
    from coin_cli.integrations.binance.rest import BinanceRESTClient

    return BinanceRESTClient.from_settings(settings.binance, budget,
                                           max_weight_per_minute=settings.data.max_weight_per_minute)


async def fetch_into_store(rest: Any, writer: DatasetWriter, start_ms: int, end_ms: int) -> int:
    """REST klines with start_ms <= open_time < end_ms (closed ones: the client drops the open one,
    and applies the 429/418/5xx policy and weight pacing) merged into `writer`. Rows received."""
    if end_ms <= start_ms:
        return 0
    rows = await rest.klines_range(writer.symbol, writer.interval, start_ms, end_ms - 1)
    if rows:
        writer.add(_rows_to_frame(rows))
    return len(rows)


def _rows_to_frame(rows: list[list[Any]]) -> Any:
    """Binance's 12-field kline arrays -> a store table (prices come as strings)."""
    import numpy as np
    import pandas as pd

    from coin_cli.data.schema import CANDLE_COLUMNS, INT_COLUMNS

    grid = np.array([r[:len(CANDLE_COLUMNS)] for r in rows], dtype=object)
    return pd.DataFrame({name: grid[:, k].astype("int64" if name in INT_COLUMNS else "float64")
                         for k, name in enumerate(CANDLE_COLUMNS)}, copy=False)


class CandleRecorder:
    """Closed stream candles the store does not have yet, merged in batches (one atomic write).

    A merge rewrites the whole dataset file, whose size grows with the store, so it happens at most
    every `every_s` seconds (and at the end of the run), not at every ledger commit. A kill -9 loses
    at most that much of the store, never of the ledger: the next start's market fetch brings the
    store up to now from REST before the first bar."""

    def __init__(self, writer: DatasetWriter, every_s: float = RECORD_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writer = writer
        self.rows: list[Candle] = []
        self.appended = 0
        self.writes = 0
        self.every_s = every_s
        self.clock = clock
        self.written_at = clock()
        frame = writer.frame
        self.last_open = int(frame["open_time"].iloc[-1]) if frame is not None and len(frame) else None

    def add(self, candle: Candle) -> None:
        if self.last_open is None or candle.open_time > self.last_open:
            self.rows.append(candle)
            self.last_open = candle.open_time

    def flush(self, force: bool = False) -> None:
        """Merge the held candles into the store when `every_s` has passed since the last merge
        (or `force`, at the end of a run)."""
        if not self.rows or (not force and self.clock() - self.written_at < self.every_s):
            return
        import pandas as pd

        frame = pd.DataFrame([c.as_dict() for c in self.rows])
        self.writer.add(frame)
        self.appended += len(self.rows)
        self.writes += 1
        self.rows = []
        self.written_at = self.clock()


class Market(NamedTuple):
    writer: DatasetWriter
    arrays: CandleArrays
    now_ms: int
    params: Any          # ExecutionParams with the exchange's filters
    filters: Any         # SymbolFilters (Decimal), for the orders live mode sends


def prepare_market(settings: Settings, warm_bars: int, budget: Any = None) -> Market:
    """Reach the market: the symbol's exchange filters (exchangeInfo, cached in the data folder)
    and the store brought up to now (at least `warm_bars` closed bars back).

    Returns the store's writer, its candles, the server-clock now, the ExecutionParams with the
    exchange's numbers and the filters themselves. Raises ExchangeError (exit 4) naming the endpoint
    when the market cannot be reached; nothing else is touched before."""
    from coin_cli.data.schema import interval_ms, normalize_interval
    from coin_cli.data.service import store_for
    from coin_cli.env.execution import ExecutionParams
    from coin_cli.integrations.binance.filters import cache_path, execution_params, fetch_filters
    from coin_cli.runtime.sources import CandleArrays

    d = settings.data
    interval = normalize_interval(d.interval)
    store = store_for(settings)
    writer = store.writer(d.symbol, interval, SOURCE, {"by": "coin trade --mode paper"})
    now = now_ms()
    step = interval_ms(interval)
    start = (now // step - warm_bars - 1) * step
    frame = writer.frame
    if frame is not None and len(frame):
        start = max(start, int(frame["close_time"].iloc[-1]) + 1)
    # always at least one request: it proves the market answers before the ledger is opened

    async def fetch() -> Any:
        async with rest_client(settings, budget) as rest:
            filters = await fetch_filters(rest, d.symbol, cache_path(settings.paths.data_dir, d.exchange, d.symbol))
            await fetch_into_store(rest, writer, min(start, now - step), now)
            return filters

    filters = asyncio.run(fetch())
    params = execution_params(filters, ExecutionParams.from_settings(settings))
    if writer.frame is None or not len(writer.frame):
        from coin_cli.errors import ExchangeError

        raise ExchangeError(f"{settings.binance.api_url}: no closed {d.symbol} {interval} klines up to now")
    return Market(writer, CandleArrays.from_frame(writer.frame), now, params, filters)


def market_source(settings: Settings, symbol: str, interval: str) -> Any:
    """The kline stream (MarketDataWS: closed klines, StreamStatus around reconnects, watchdog)."""
    from coin_cli.integrations.binance.market_ws import MarketDataWS

    return MarketDataWS.from_settings(settings.binance, symbol, interval)
