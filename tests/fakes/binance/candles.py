"""Candle sources of the fake: a synthetic formula (`KlineSeries`) and real candles re-timed to the
present (`CandleSeries`). Both answer the same questions, so REST klines and the kline streams
serve one consistent history:

- `open_times(start, end, limit, now_ms)`: the bars that exist in [start, end] and have opened by now;
- `rows(times, now_ms)`: Binance's 12-column kline rows (the bar containing `now_ms` is the still-open
  one: a `CandleSeries` shows it part-formed, as Binance does);
- `step`, `symbol`, `interval`, `start_ms`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
EIGHT = Decimal("0.00000001")


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

    def rows(self, times: np.ndarray, now_ms: int | None = None) -> list[list[Any]]:
        """Binance's kline array layout: strings for prices and volumes, ints for times and counts.
        (The synthetic series shows the still-open bar with its final values.)"""
        v = self.values(times)
        step = self.step
        out = []
        for i, t in enumerate(np.asarray(times).tolist()):
            out.append([t, f"{v['open'][i]:.8f}", f"{v['high'][i]:.8f}", f"{v['low'][i]:.8f}",
                        f"{v['close'][i]:.8f}", f"{v['volume'][i]:.8f}", t + step - 1,
                        f"{v['quote_volume'][i]:.8f}", int(v["trades"][i]), f"{v['taker_buy_base'][i]:.8f}",
                        f"{v['taker_buy_quote'][i]:.8f}", "0"])
        return out


@dataclass
class CandleSeries:
    """Real candles re-timed: candle k opens at `start_ms + slots[k] * step` (slots keep a file's gaps).

    Prices are kept as the file's decimal text (8 decimals on the wire), so a client can compare
    what it received with the file exactly."""

    symbol: str
    interval: str
    start_ms: int
    ohlcv: list[tuple[Decimal, Decimal, Decimal, Decimal, Decimal]]
    slots: np.ndarray

    @property
    def step(self) -> int:
        return INTERVAL_MS[self.interval]

    @property
    def end_ms(self) -> int:
        """Close time of the last candle."""
        return self.open_time(len(self.ohlcv) - 1) + self.step - 1

    def open_time(self, k: int) -> int:
        return self.start_ms + int(self.slots[k]) * self.step

    def close_time(self, k: int) -> int:
        return self.open_time(k) + self.step - 1

    def index_of(self, open_time: int) -> int | None:
        slot, rem = divmod(open_time - self.start_ms, self.step)
        k = int(np.searchsorted(self.slots, slot))
        return k if rem == 0 and k < len(self.slots) and self.slots[k] == slot else None

    def open_times(self, start: int | None, end: int, limit: int, now_ms: int) -> np.ndarray:
        times = self.start_ms + self.slots * self.step
        hi = int(np.searchsorted(times, min(end, now_ms), side="right"))
        if start is None:
            return times[max(0, hi - limit):hi]
        lo = int(np.searchsorted(times, start, side="left"))
        return times[lo:min(hi, lo + limit)]

    def rows(self, times: np.ndarray, now_ms: int | None = None) -> list[list[Any]]:
        out = []
        for t in np.asarray(times).tolist():
            k = self.index_of(t)
            assert k is not None, f"no candle opens at {t}"
            o, h, low, c, v = self.ohlcv[k]
            if now_ms is not None and now_ms < t + self.step:  # still open: part-formed so far
                part = Decimal(max(0, now_ms - t)) / Decimal(self.step)
                c = (o + (c - o) * part).quantize(EIGHT)
                h, low, v = max(o, c), min(o, c), (v * part).quantize(EIGHT)
            trades = 10 + k % 50
            taker = (v / 2).quantize(EIGHT)
            out.append([t, _s(o), _s(h), _s(low), _s(c), _s(v), t + self.step - 1, _s((v * c).quantize(EIGHT)),
                        trades, _s(taker), _s((taker * c).quantize(EIGHT)), "0"])
        return out


def _s(value: Decimal) -> str:
    return f"{value:.8f}"


def load_candles(source: str | Path | Sequence[Sequence[Any]]) -> tuple[list[tuple[Decimal, ...]], list[int] | None]:
    """Candles from a CSV file (`open_time_ms,open,high,low,close,volume`, header optional, or Binance's
    12-column layout) or from rows of (open, high, low, close, volume) or (open_time, o, h, l, c, v).
    Returns the OHLCV rows and the open times when the source has them."""
    if isinstance(source, (str, Path)):
        with open(source, newline="", encoding="utf-8") as handle:
            records: list[Sequence[Any]] = [r for r in csv.reader(handle) if r and r[0][:1].isdigit()]
    else:
        records = list(source)
    if not records:
        raise ValueError("fake Binance: no candles given")
    width = len(records[0])
    timed = width >= 6
    ohlcv = [tuple(Decimal(str(x)) for x in (r[1:6] if timed else r[:5])) for r in records]
    times = [int(float(r[0])) for r in records] if timed else None
    return ohlcv, times  # type: ignore[return-value]


def retimed_slots(times: list[int] | None, count: int) -> np.ndarray:
    """Bar positions on the new grid: a file's own spacing (its gaps kept) or 0..n-1."""
    if times is None or count < 2:
        return np.arange(count, dtype=np.int64)
    step = min(b - a for a, b in itertools.pairwise(times))
    if step <= 0:
        raise ValueError("fake Binance: candle open times must be increasing")
    return np.asarray([(t - times[0]) // step for t in times], dtype=np.int64)
