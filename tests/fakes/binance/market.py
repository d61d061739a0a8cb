"""Market-data endpoints of the fake: /api/v3/ping, /time, /klines, /exchangeInfo.

Candles come from `KlineSeries`: a deterministic formula of the open time (no storage, so a
series can hold millions of bars), with optional gaps (maintenance windows) and an open end that
follows the server clock, so the last candle of a page can be the still-open one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.fakes.binance.server import CONTROL_ACTIONS, MODULES, ApiError, FakeBinance

INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
_REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "binance"
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


@dataclass
class KlineSeries:
    """Bars of one symbol/interval from `start_ms` to `end_ms` (None: up to the server's now)."""

    symbol: str
    interval: str
    start_ms: int
    end_ms: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)   # [from, to] open times with no bar

    @property
    def step(self) -> int:
        return INTERVAL_MS[self.interval]

    def open_times(self, start: int | None, end: int, limit: int, now_ms: int) -> np.ndarray:
        """Open times on the grid in [start, end] that exist (not in a gap, not after now)."""
        last = min(end, now_ms, self.end_ms if self.end_ms is not None else end)
        if start is None:  # no startTime: the most recent `limit` bars up to `last`
            newest = last - (last - self.start_ms) % self.step
            spare = limit + self._gap_bars()
            return self._collect(max(self.start_ms, newest - self.step * spare), last, spare + 1)[-limit:]
        return self._collect(start, last, limit)

    def _collect(self, start: int, last: int, limit: int) -> np.ndarray:
        step = self.step
        first = max(start, self.start_ms)
        first += (-(first - self.start_ms)) % step
        found: list[np.ndarray] = []
        count = 0
        cursor = first
        while count < limit and cursor <= last:
            chunk = cursor + step * np.arange(limit - count, dtype=np.int64)
            chunk = chunk[chunk <= last]
            if not len(chunk):
                break
            keep = np.ones(len(chunk), dtype=bool)
            for lo, hi in self.gaps:
                keep &= ~((chunk >= lo) & (chunk <= hi))
            found.append(chunk[keep])
            count += int(keep.sum())
            cursor = int(chunk[-1]) + step
        times = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        return times[:limit]

    def _gap_bars(self) -> int:
        return sum((hi - lo) // self.step + 1 for lo, hi in self.gaps)

    def values(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """OHLCV and the rest for each open time (pure function of the bar index)."""
        n = (np.asarray(times, dtype=np.int64) - self.start_ms) // self.step
        close = self._close(n)
        open_ = self._close(n - 1)
        high = np.round(np.maximum(open_, close) + 0.1 + (n % 7) * 0.05, 2)
        low = np.round(np.minimum(open_, close) - 0.1 - (n % 5) * 0.05, 2)
        volume = np.round(1.0 + (n * 7919 % 1000) / 100.0, 8)
        volume = np.where(n % 997 == 13, 0.0, volume)  # now and then a zero-volume bar, as real markets have
        taker = np.round(volume * (0.3 + (n % 5) * 0.1), 8)
        return {"open": open_, "high": high, "low": low, "close": close, "volume": volume,
                "quote_volume": np.round(volume * close, 8), "trades": (10 + n % 50).astype(np.int64),
                "taker_buy_base": taker, "taker_buy_quote": np.round(taker * close, 8)}

    @staticmethod
    def _close(n: np.ndarray) -> np.ndarray:
        return np.round(1000.0 + 50.0 * np.sin(n / 500.0) + 3.0 * np.sin(n / 13.0) + 0.001 * n, 2)

    def rows(self, times: np.ndarray) -> list[list[Any]]:
        """Binance's kline array layout: strings for prices and volumes, ints for times and counts."""
        v = self.values(times)
        step = self.step
        out = []
        for i, t in enumerate(times.tolist()):
            out.append([t, f"{v['open'][i]:.8f}", f"{v['high'][i]:.8f}", f"{v['low'][i]:.8f}",
                        f"{v['close'][i]:.8f}", f"{v['volume'][i]:.8f}", t + step - 1,
                        f"{v['quote_volume'][i]:.8f}", int(v["trades"][i]), f"{v['taker_buy_base'][i]:.8f}",
                        f"{v['taker_buy_quote'][i]:.8f}", "0"])
        return out


def add_series(fake: FakeBinance, symbol: str, interval: str, start_ms: int, end_ms: int | None = None,
               gaps: list[tuple[int, int]] | None = None) -> KlineSeries:
    series = KlineSeries(symbol.upper(), interval, int(start_ms), end_ms, [tuple(g) for g in gaps or []])
    fake.state.setdefault("series", {})[(series.symbol, interval)] = series
    return series


def _series(fake: FakeBinance, symbol: str) -> list[KlineSeries]:
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
            if not _series(fake, symbol):
                raise ApiError(400, -1121, "Invalid symbol.")
            return []
        limit = min(_int_param(params, "limit") or 500, 1000)
        now = fake.server_time_ms()
        end = _int_param(params, "endTime")
        times = series.open_times(_int_param(params, "startTime"), now if end is None else end, limit, now)
        return series.rows(times)

    @fake.endpoint("GET", "/api/v3/exchangeInfo", weight=20)
    async def exchange_info(request: Any, params: dict[str, str]) -> dict[str, Any]:
        wanted = [params["symbol"]] if "symbol" in params else json.loads(params.get("symbols", "null") or "null")
        symbols = sorted({sym for sym, _ in fake.state.get("series", {})} | set(fake.state.get("symbols", ())))
        if wanted:
            unknown = [s for s in wanted if s not in symbols]
            if unknown:
                raise ApiError(400, -1121, "Invalid symbol.")
            symbols = list(wanted)
        info = copy.deepcopy(_exchange_info_template())
        template = info["symbols"][0]
        info["serverTime"] = fake.server_time_ms()
        info["symbols"] = [_symbol_info(template, s) for s in symbols]
        return info


def _exchange_info_template() -> dict[str, Any]:
    path = _REFERENCE / "rest_exchangeInfo_symbol.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _symbol_info(template: dict[str, Any], symbol: str) -> dict[str, Any]:
    info = copy.deepcopy(template)
    quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), symbol[-4:])
    info.update({"symbol": symbol, "baseAsset": symbol[: -len(quote)], "quoteAsset": quote})
    return info


def _control_series(fake: FakeBinance, body: dict[str, Any]) -> None:
    add_series(fake, body["symbol"], body["interval"], body["start_ms"], body.get("end_ms"), body.get("gaps"))


MODULES["market"] = install
CONTROL_ACTIONS["series"] = _control_series
