"""GapFiller and ReplaySource: closed candles only, de-duplicated, in order, gaps filled first."""

from __future__ import annotations

import asyncio

import numpy as np

from coin_cli.runtime.events import Candle, CandleBatch, EndOfStream
from coin_cli.runtime.gap_filler import ArrayCandleProvider, GapFiller
from coin_cli.runtime.sources import CandleArrays, ReplaySource

STEP = 60_000


def _arrays(opens: list[int]) -> CandleArrays:
    ot = np.array(opens, dtype="int64")
    price = 100.0 + ot / STEP
    return CandleArrays(ot, price, price + 1, price - 1, price + 0.5, np.ones(len(ot)), ot + STEP - 1)


def _candle(i: int, closed: bool = True) -> Candle:
    p = 100.0 + i
    return Candle(i * STEP, p, p + 1, p - 1, p + 0.5, 1.0, i * STEP + STEP - 1, closed)


def _opens(bars: object) -> list[int]:
    return [c.open_time // STEP for c in bars]  # type: ignore[attr-defined]


def test_in_order_duplicates_and_open_candles() -> None:
    gf = GapFiller(None)
    assert _opens(gf.admit(_candle(0))) == [0]
    assert _opens(gf.admit(_candle(1, closed=False))) == []      # still forming: ignored
    assert _opens(gf.admit(_candle(1))) == [1]
    assert _opens(gf.admit(_candle(1))) == []                    # duplicate
    assert _opens(gf.admit(_candle(0))) == []                    # late / old
    assert gf.stats() == {"gaps": 0, "gap_bars_filled": 0, "duplicates_dropped": 2, "open_candles_dropped": 1}


def test_gap_is_filled_in_order_before_the_next_bar() -> None:
    provider = ArrayCandleProvider(_arrays([i * STEP for i in range(10)]))
    gf = GapFiller(provider, next_open=2 * STEP)
    assert _opens(gf.admit(_candle(6))) == [2, 3, 4, 5, 6]
    assert _opens(gf.admit(_candle(7))) == [7]
    assert gf.gaps == 1 and gf.filled == 4


def test_a_gap_the_provider_cannot_fill_stays_a_gap() -> None:
    # The store's maintenance windows: nothing to fill, the bar after the gap is processed.
    provider = ArrayCandleProvider(_arrays([0, STEP, 5 * STEP]))
    gf = GapFiller(provider, next_open=2 * STEP)
    assert _opens(gf.admit(_candle(5))) == [5]
    assert gf.gaps == 1 and gf.filled == 0


class _JunkProvider:
    def closed_candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        return [_candle(1), _candle(3), _candle(2), _candle(4, closed=False), _candle(9)]


def test_provider_answers_are_filtered_to_closed_in_range_increasing() -> None:
    gf = GapFiller(_JunkProvider(), next_open=2 * STEP)
    assert _opens(gf.admit(_candle(5))) == [3, 5]


def test_replay_source_batches_resume_point_and_max_bars() -> None:
    arrays = _arrays([i * STEP for i in range(1200)])
    source = ReplaySource(arrays, after=99 * STEP, max_bars=1000, batch=512)
    queue: asyncio.Queue = asyncio.Queue()
    asyncio.run(source.run(queue))
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert isinstance(items[-1], EndOfStream)
    candles = [c for item in items[:-1] for c in item.candles]
    assert all(isinstance(item, CandleBatch) for item in items[:-1])
    assert _opens(candles) == list(range(100, 1100))
    assert candles[0].close == arrays.close[100] and candles[0]["close"] == arrays.close[100]
