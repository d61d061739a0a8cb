"""Market-data REST endpoints of the fake: /api/v3/ping, /time, /klines (exchangeInfo: exchange_info.py).

Candles come from a series registered per (symbol, interval) (see candles.py): `add_series` for the
synthetic formula, `add_candles` for real candles re-timed to the present. The kline streams
(streams.py) read the same series, so REST history and the stream agree bar for bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.fakes.binance.candles import INTERVAL_MS, CandleSeries, KlineSeries, load_candles, retimed_slots
from tests.fakes.binance.server import CONTROL_ACTIONS, MODULES, ApiError, FakeBinance

Series = KlineSeries | CandleSeries
__all__ = ["INTERVAL_MS", "CandleSeries", "KlineSeries", "add_candles", "add_series", "get_series"]


def add_series(fake: FakeBinance, symbol: str, interval: str, start_ms: int, end_ms: int | None = None,
               gaps: list[tuple[int, int]] | None = None) -> KlineSeries:
    series = KlineSeries(symbol.upper(), interval, int(start_ms), end_ms, [tuple(g) for g in gaps or []])
    fake.state.setdefault("series", {})[(series.symbol, interval)] = series
    return series


def add_candles(fake: FakeBinance, symbol: str, interval: str, candles: str | Path | Sequence[Sequence[Any]],
                history: int = 0, start_ms: int | None = None) -> CandleSeries:
    """Serve `candles` (a CSV path or rows, see candles.load_candles) re-timed to the fake's clock.

    With `history=h`, candles 0..h-1 have closed before now and candle h is the one open now, so
    candle k (k >= h) closes at a real wall time a test can wait for (`series.close_time(k)`).
    `start_ms` instead pins candle 0's open time. A file's gaps are kept (its own spacing)."""
    if interval not in INTERVAL_MS:
        raise ValueError(f"fake Binance: unknown interval {interval!r}")
    ohlcv, times = load_candles(candles)
    slots = retimed_slots(times, len(ohlcv))
    step = INTERVAL_MS[interval]
    if start_ms is None:
        if not 0 <= history <= len(ohlcv):
            raise ValueError(f"fake Binance: history={history} outside 0..{len(ohlcv)}")
        now = fake.server_time_ms()
        current_slot = int(slots[history]) if history < len(ohlcv) else int(slots[-1]) + 1
        start_ms = now - now % step - current_slot * step
    series = CandleSeries(symbol.upper(), interval, int(start_ms), ohlcv, slots)  # type: ignore[arg-type]
    fake.state.setdefault("series", {})[(series.symbol, interval)] = series
    return series


def get_series(fake: FakeBinance, symbol: str, interval: str) -> Series | None:
    return fake.state.get("series", {}).get((symbol.upper(), interval))


def _series(fake: FakeBinance, symbol: str) -> list[Series]:
    return [s for (sym, _), s in fake.state.get("series", {}).items() if sym == symbol]


def _int_param(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, -1100,
                       f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


def install(fake: FakeBinance) -> None:
    @fake.endpoint("GET", "/api/v3/ping", weight=1)
    async def ping(request: Any, params: dict[str, str]) -> dict[str, Any]:
        return {}

    @fake.endpoint("GET", "/api/v3/time", weight=1)
    async def server_time(request: Any, params: dict[str, str]) -> dict[str, Any]:
        return {"serverTime": fake.server_time_ms()}

    @fake.endpoint("GET", "/api/v3/klines", weight=2)
    async def klines(request: Any, params: dict[str, str]) -> list[list[Any]]:
        symbol = params.get("symbol")
        interval = params.get("interval")
        if not symbol:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not interval:
            raise ApiError(400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval not in INTERVAL_MS:
            raise ApiError(400, -1120, "Invalid interval.")
        series = fake.state.get("series", {}).get((symbol, interval))
        if series is None:
            if not _series(fake, symbol) and symbol not in fake.state.get("symbols", ()):
                raise ApiError(400, -1121, "Invalid symbol.")
            return []
        limit = min(_int_param(params, "limit") or 500, 1000)
        now = fake.server_time_ms()
        end = _int_param(params, "endTime")
        times = series.open_times(_int_param(params, "startTime"), now if end is None else end, limit, now)
        return series.rows(times, now)


def _control_series(fake: FakeBinance, body: dict[str, Any]) -> None:
    add_series(fake, body["symbol"], body["interval"], body["start_ms"], body.get("end_ms"), body.get("gaps"))


def _control_candles(fake: FakeBinance, body: dict[str, Any]) -> None:
    add_candles(fake, body["symbol"], body["interval"], body.get("path") or body["candles"],
                int(body.get("history", 0)), body.get("start_ms"))


MODULES["market"] = install
CONTROL_ACTIONS["series"] = _control_series
CONTROL_ACTIONS["candles"] = _control_candles
