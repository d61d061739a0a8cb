"""The loopback fake Binance itself: protocol shapes python-binance relies on, weight accounting
(429 then 418 with Retry-After), and the standalone process driven over /_control."""

from __future__ import annotations

import asyncio
import time

import pytest
from binance import AsyncClient
from binance.exceptions import BinanceAPIException

from tests.fakes.binance import FakeBinance, FakeBinanceProcess, add_series

MINUTE = 60_000


async def _client(api_url: str):  # python-binance's own create(): GET ping + GET time
    return await type("Local", (AsyncClient,), {"API_URL": api_url}).create()


def test_klines_shape_limits_and_errors() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            now = fake.server_time_ms()
            series = add_series(fake, "ETHBTC", "1h", now - now % 3_600_000 - 30 * 3_600_000)
            client = await _client(fake.api_url)
            try:
                rows = await client.get_klines(symbol="ETHBTC", interval="1h", limit=5)
                assert len(rows) == 5 and [len(r) for r in rows] == [12] * 5
                assert isinstance(rows[0][0], int) and isinstance(rows[0][1], str) and rows[0][11] == "0"
                assert rows[-1][6] > now  # the newest bar is the still-open one
                page = await client.get_klines(symbol="ETHBTC", interval="1h", startTime=series.start_ms, limit=2000)
                assert len(page) == 31 and page[0][0] == series.start_ms
                assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "6"
                info = await client.get_exchange_info()
                assert info["symbols"][0]["symbol"] == "ETHBTC"
                assert {f["filterType"] for f in info["symbols"][0]["filters"]} >= {"LOT_SIZE", "PRICE_FILTER"}
                for params, code in (({"symbol": "NOPE", "interval": "1h"}, -1121),
                                     ({"symbol": "ETHBTC", "interval": "7m"}, -1120),
                                     ({"symbol": "ETHBTC", "interval": "1h", "startTime": "x"}, -1100)):
                    with pytest.raises(BinanceAPIException) as info_:
                        await client.get_klines(**params)
                    assert (info_.value.status_code, info_.value.code) == (400, code)
            finally:
                await client.close_connection()

    asyncio.run(scenario())


def test_weight_limit_gives_429_then_418_with_retry_after() -> None:
    async def scenario() -> None:
        async with FakeBinance(weight_limit=10, ban_after_429s=1) as fake:
            minute = (fake.server_time_ms() // MINUTE + 1) * MINUTE
            fake.set_clock(now_ms=minute + 30_000)
            add_series(fake, "BTCUSDT", "1m", minute - 100 * MINUTE)
            client = await _client(fake.api_url)  # ping + time: weight 2
            try:
                for _ in range(4):
                    await client.get_klines(symbol="BTCUSDT", interval="1m", limit=10)  # weight 10 reached
                statuses = []
                for _ in range(3):
                    with pytest.raises(BinanceAPIException) as info:
                        await client.get_klines(symbol="BTCUSDT", interval="1m", limit=10)
                    statuses.append((info.value.status_code, info.value.code))
                    retry_after = int(info.value.response.headers["Retry-After"])
                    assert 0 < retry_after <= 120
                assert statuses == [(429, -1003), (418, -1003), (418, -1003)]
            finally:
                await client.close_connection()

    asyncio.run(scenario())


def test_standalone_process_is_driven_over_control() -> None:
    now = int(time.time() * 1000)
    start = now - now % MINUTE - 50 * MINUTE
    with FakeBinanceProcess("--series", f"BTCUSDT:1m:{start}") as fake:
        assert fake.control("health")["ok"] is True
        fake.control("fail", path="/api/v3/klines", status=503)

        async def scenario() -> list[list]:
            client = await _client(fake.api_url)
            try:
                with pytest.raises(BinanceAPIException) as info:
                    await client.get_klines(symbol="BTCUSDT", interval="1m", startTime=start)
                assert info.value.status_code == 503
                return await client.get_klines(symbol="BTCUSDT", interval="1m", startTime=start)
            finally:
                await client.close_connection()

        rows = asyncio.run(scenario())
        assert rows[0][0] == start and len(rows) >= 50
        log = fake.control("requests")
        assert [r["path"] for r in log] == ["/api/v3/ping", "/api/v3/time", "/api/v3/klines", "/api/v3/klines"]
        assert [r["status"] for r in log][-2:] == [503, 200]
