"""MarketDataWS against the loopback fake's kline streams (1s candles from a real candle file, in
real time): closed klines in order with the file's values, and a new socket with StreamStatus
down/up after a drop, a stall (watchdog), a serverShutdown; an unreachable market at start."""

from __future__ import annotations

import asyncio
import csv
import itertools
import time
from pathlib import Path

import pytest

from coin_cli.integrations.binance.market_ws import MarketDataWS
from coin_cli.runtime.events import Candle, EndOfStream, StreamStatus
from tests.fakes.binance import FakeBinance, add_candles

CANDLES = Path(__file__).resolve().parents[1] / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 50
pytestmark = pytest.mark.timeout(60)


def _file_rows() -> list[tuple[float, ...]]:
    with CANDLES.open(newline="") as handle:
        return [tuple(float(x) for x in row[1:6]) for row in list(csv.reader(handle))[1:]]


def _source(fake: FakeBinance, **kw: object) -> MarketDataWS:
    opts = {"reconnect_base": 0.05, "reconnect_cap": 0.2, "close_timeout": 1.0, **kw}
    return MarketDataWS("BTCUSDT", "1s", stream_url=fake.stream_url, api_url=fake.api_url, **opts)


async def _events(queue: asyncio.Queue, until, limit_s: float = 20.0) -> list[object]:
    got: list[object] = []
    deadline = time.monotonic() + limit_s
    while not until(got):
        assert time.monotonic() < deadline, f"only {got!r}"
        got.append(await asyncio.wait_for(queue.get(), deadline - time.monotonic()))
    return got


def _candles(events: list[object]) -> list[Candle]:
    return [e for e in events if isinstance(e, Candle)]


def _n_candles(n: int):
    return lambda got: len(_candles(got)) >= n


async def _run(fake: FakeBinance, scenario, **kw: object) -> tuple[list[object], MarketDataWS]:
    source = _source(fake, **kw)
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(source.run(queue))
    try:
        events = await scenario(queue)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events, source


def test_closed_klines_in_order_with_the_files_values() -> None:
    rows = _file_rows()

    async def main() -> None:
        async with FakeBinance() as fake:
            series = add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            events, source = await _run(fake, lambda q: _events(q, _n_candles(4)))
            candles = _candles(events)
            assert [b.open_time - a.open_time for a, b in itertools.pairwise(candles)] == [1000] * 3
            for c in candles:
                index = (c.open_time - series.start_ms) // 1000
                assert c.closed and c.close_time == c.open_time + 999
                assert (c.open, c.high, c.low, c.close, c.volume) == rows[index]
            assert not [e for e in events if isinstance(e, StreamStatus)]
            assert source.last_closed_open_time == candles[-1].open_time and source.reconnects == 0
            # the stream also carried open-kline updates: none of them reached the queue
            assert any(not s["x"] for s in fake.streams.sent)

    asyncio.run(main())


@pytest.mark.parametrize("fault", ["abort", "close", "shutdown"])
def test_a_drop_or_server_shutdown_is_down_then_up_on_a_new_socket(fault: str) -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)

            async def scenario(queue: asyncio.Queue) -> list[object]:
                got = await _events(queue, _n_candles(1))
                if fault == "shutdown":
                    fake.streams.server_shutdown()
                else:
                    fake.streams.drop(fault)
                return got + await _events(queue, lambda g: len(_candles(g)) >= 2
                                           and any(isinstance(e, StreamStatus) and e.up for e in g))

            events, source = await _run(fake, scenario)
            statuses = [(e.up, e.detail) for e in events if isinstance(e, StreamStatus)]
            assert [up for up, _ in statuses] == [False, True]
            expected = "serverShutdown" if fault == "shutdown" else "error: "
            assert statuses[0][1].startswith(expected), statuses
            # python-binance may have reconnected by itself first: that socket was closed for ours
            assert source.reconnects == 1 and fake.streams.connects >= 2
            candles = _candles(events)
            assert candles[-1].open_time > candles[0].open_time  # no backfill here: GapFiller's job

    asyncio.run(main())


def test_a_stalled_socket_is_replaced_by_the_watchdog() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)

            async def scenario(queue: asyncio.Queue) -> list[object]:
                got = await _events(queue, _n_candles(1))
                fake.streams.stall()  # this socket says nothing from now on; pongs go on
                return got + await _events(queue, lambda g: len(_candles(g)) >= 2)

            began = time.monotonic()
            events, source = await _run(fake, scenario, stale_after_s=1.5)
            statuses = [(e.up, e.detail) for e in events if isinstance(e, StreamStatus)]
            assert statuses[0] == (False, "stale: no message for 1.5 s") and statuses[1][0] is True
            assert source.reasons == {"stale": 1} and fake.streams.connects == 2
            assert time.monotonic() - began >= 1.5

    asyncio.run(main())


def test_market_unreachable_at_start_ends_with_an_error_naming_the_endpoint() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            fake.refuse_connections()
            events, _ = await _run(fake, lambda q: _events(q, lambda g: bool(g)), connect_retries=2)
            (end,) = events
            assert isinstance(end, EndOfStream) and end.error is not None
            assert str(end.error) == (f"{fake.stream_url}ws/btcusdt@kline_1s: cannot open the market stream "
                                      "after 2 retries")

    asyncio.run(main())
