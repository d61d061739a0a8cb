"""GapFiller and ReplaySource: closed candles only, de-duplicated, in order, gaps filled first."""

from __future__ import annotations

import asyncio

import numpy as np

from coin_cli.errors import DataError
from coin_cli.runtime.events import Candle, CandleBatch, EndOfStream, GapFilled
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


# ---- live: the fill runs in a task, the loop keeps taking events --------------------------------

class _SlowRest:
    """An async provider over bars 0..`upto`: waits `delay` s, fails the first `failures` calls."""

    def __init__(self, upto: int, delay: float = 0.05, failures: int = 0) -> None:
        self.upto, self.delay, self.failures = upto, delay, failures
        self.calls: list[tuple[int, int]] = []

    async def fetch_closed(self, start_ms: int, end_ms: int) -> list[Candle]:
        self.calls.append((start_ms, end_ms))
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise DataError("HTTP 503")
        return [_candle(i) for i in range(self.upto + 1) if start_ms <= i * STEP < end_ms]


async def _drain(gf: GapFiller, queue: asyncio.Queue, events: list[Candle]) -> list[int]:
    """Feed `events` as a stream would while the fill task runs; collect what the loop processes."""
    out: list[int] = []
    for c in events:
        out += _opens(gf.admit(c))
        await asyncio.sleep(0)
    while gf.filling:
        assert isinstance(await asyncio.wait_for(queue.get(), 5), GapFilled)
        out += _opens(gf.complete())
    return out


def test_live_gap_fetched_in_a_task_while_candles_are_held() -> None:
    async def main() -> tuple[list[int], GapFiller, _SlowRest]:
        rest = _SlowRest(upto=9)
        gf = GapFiller(None, next_open=2 * STEP, fetcher=rest)
        queue: asyncio.Queue = asyncio.Queue()
        gf.attach(queue)
        # bar 6 reveals the gap 2..5; 7, a repeat of 7, 8 arrive before the fetch returns
        return await _drain(gf, queue, [_candle(6), _candle(7), _candle(7), _candle(8)]), gf, rest

    out, gf, rest = asyncio.run(main())
    assert out == [2, 3, 4, 5, 6, 7, 8]
    assert rest.calls == [(2 * STEP, 6 * STEP)]
    assert gf.stats()["duplicates_dropped"] == 1 and gf.filled == 4 and gf.next_open == 9 * STEP


def test_reconnect_fill_drops_the_open_bar_and_retries_a_failing_rest(monkeypatch) -> None:
    import coin_cli.runtime.gap_filler as gap_filler

    monkeypatch.setattr(gap_filler, "FILL_RETRY_S", (0.01,))

    async def main() -> tuple[list[int], GapFiller]:
        rest = _SlowRest(upto=5, failures=2)   # bar 6 is still open at "now": REST has up to 5
        gf = GapFiller(None, next_open=2 * STEP, fetcher=rest)
        queue: asyncio.Queue = asyncio.Queue()
        gf.attach(queue)
        assert gf.request_fill(6 * STEP + STEP // 2)      # StreamStatus(up) at 6.5 intervals
        # the open kline of 6, then its close, then a reordered 8 before 7
        return await _drain(gf, queue, [_candle(6, closed=False), _candle(6), _candle(8), _candle(7)]), gf

    out, gf = asyncio.run(main())
    assert out == [2, 3, 4, 5, 6, 7, 8]
    assert gf.fill_failures == 2 and gf.not_closed == 1


def test_a_hole_after_the_fill_starts_the_next_fill() -> None:
    async def main() -> list[int]:
        rest = _SlowRest(upto=12)
        gf = GapFiller(None, next_open=2 * STEP, fetcher=rest)
        queue: asyncio.Queue = asyncio.Queue()
        gf.attach(queue)
        # 4 opens the first fill (2..3); 9 arrives meanwhile: 5..8 missing too, fetched next
        return await _drain(gf, queue, [_candle(4), _candle(9)])

    assert asyncio.run(main()) == list(range(2, 10))


class _Alerts:
    def __init__(self) -> None:
        self.events: list[str] = []

    def stream_down(self, detail: str) -> None:
        self.events.append("down")

    def stream_up(self) -> None:
        self.events.append("up")


def test_stream_down_alert_only_past_the_threshold() -> None:
    from coin_cli.runtime.sources import StreamHealth

    async def main() -> list[str]:
        alerts = _Alerts()
        health = StreamHealth(alerts, after_s=0.1)
        health.down("socket closed")          # back within the threshold: no alert
        await asyncio.sleep(0.02)
        health.up()
        await asyncio.sleep(0.15)
        assert alerts.events == [] and health.describe() == "up (1 reconnect)"
        health.down("socket closed")          # stays down: STREAM_DOWN once, cleared on up
        health.down("again")
        await asyncio.sleep(0.15)
        assert health.describe().startswith("down")
        health.up()
        return alerts.events

    assert asyncio.run(main()) == ["down", "up"]
