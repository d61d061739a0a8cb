"""BinanceRESTClient against the loopback fake: closed klines only, paging a range, exchangeInfo
filters, the server clock, one weight budget shared by two clients, and the failure policy
(Retry-After, 5xx backoff, -1121 usage error, other 4xx at once, unreachable -> exit-4 error)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from coin_cli.errors import ExchangeError, UsageError
from coin_cli.integrations.binance.rest import BinanceRESTClient, WeightBudget
from tests.fakes.binance import FakeBinance, add_series, set_filters

MINUTE = 60_000
pytestmark = pytest.mark.timeout(60)


def _pin(fake: FakeBinance, seconds_into_minute: float) -> int:
    minute = (int(time.time() * 1000) // MINUTE + 1) * MINUTE
    fake.set_clock(now_ms=minute + int(seconds_into_minute * 1000))
    return minute


def _client(fake: FakeBinance, **kw: object) -> BinanceRESTClient:
    return BinanceRESTClient(fake.api_url, timeout=2.0, max_retries=kw.pop("max_retries", 3), **kw)


def test_klines_are_closed_only_and_a_range_pages() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            minute = _pin(fake, 20)
            series = add_series(fake, "BTCUSDT", "1m", minute - 30 * MINUTE)
            async with _client(fake) as rest:
                assert abs(rest.server_now_ms() - fake.server_time_ms()) < 1000
                page = await rest.klines("BTCUSDT", "1m", limit=1000)
                assert page.received == 31 and page.open_dropped == 1 and page.last_open == minute
                assert [r[0] for r in page.rows] == [series.start_ms + i * MINUTE for i in range(30)]
                candles = page.candles()
                assert candles[-1].open_time == minute - MINUTE and candles[-1].close_time == minute - 1
                assert candles[0].close == float(page.rows[0][4])
                rows = await rest.klines_range("BTCUSDT", "1m", series.start_ms, minute, limit=7)
                assert [r[0] for r in rows] == [r[0] for r in page.rows]  # 5 pages of 7, the open one dropped
                assert len(fake.requests_to("/api/v3/klines")) == 1 + 5
                assert await rest.server_time() >= minute

    asyncio.run(main())


def test_a_lagging_clock_estimate_drops_only_the_newest_row() -> None:
    """The client reads the server clock once, at connect; when the server's clock is later 10
    minutes ahead of that estimate (a suspended laptop, a VM migration), the 10 bars that closed
    meanwhile are still closed: only the newest row can be the open candle."""
    async def main() -> None:
        async with FakeBinance() as fake:
            minute = _pin(fake, 20)
            series = add_series(fake, "BTCUSDT", "1m", minute - 30 * MINUTE)
            async with _client(fake) as rest:
                fake.set_clock(now_ms=minute + 10 * MINUTE + 20_000)
                rows = await rest.klines_range("BTCUSDT", "1m", series.start_ms, minute + 10 * MINUTE)
                assert [r[0] for r in rows] == [series.start_ms + i * MINUTE for i in range(40)]

    asyncio.run(main())


def test_exchange_info_filters_with_a_zero_market_step() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            add_series(fake, "BTCUSDT", "1m", 0, MINUTE * 10)
            set_filters(fake, "BTCUSDT", market_lot_size={"stepSize": "0.00000000"},
                        lot_size={"stepSize": "0.00001000", "minQty": "0.00001000"},
                        price_filter={"tickSize": "0.01000000"}, notional=None,
                        min_notional={"minNotional": "5.00000000", "applyToMarket": True})
            async with _client(fake) as rest:
                f = await rest.exchange_info("BTCUSDT")
                with pytest.raises(UsageError, match=r"Invalid symbol\. \(code -1121\): check --symbol"):
                    await rest.exchange_info("NOPEUSDT")
            assert (f.symbol, f.quote_asset, f.market_step, f.tick_size) == (
                "BTCUSDT", "USDT", Decimal("0.00001"), Decimal("0.01"))
            assert (f.min_notional, f.notional_source, f.min_notional_market) == (Decimal(5), "MIN_NOTIONAL", True)
            assert fake.requests_to("/api/v3/exchangeInfo")[0]["params"] == {"symbol": "BTCUSDT"}

    asyncio.run(main())


def test_one_budget_paces_two_clients_into_the_next_minute() -> None:
    async def main() -> None:
        async with FakeBinance(weight_limit=1000) as fake:
            minute = _pin(fake, 59.2)
            add_series(fake, "BTCUSDT", "1m", minute - 10 * MINUTE)
            budget = WeightBudget(max_per_minute=1000)
            fake.preload_weight(992)   # other clients on this IP: 2 connects (2 each) and 2 pages fit
            a, b = _client(fake, budget=budget), _client(fake, budget=budget)
            async with a, b:
                await a.klines("BTCUSDT", "1m", limit=5)      # 998 of 1000
                await b.klines("BTCUSDT", "1m", limit=5)
                await b.klines("BTCUSDT", "1m", limit=5)      # would pass 1000: waits for the minute
            assert all(r["status"] == 200 for r in fake.requests)   # paced, never a 429
            minutes = [r["server_time_ms"] // MINUTE for r in fake.requests_to("/api/v3/klines")]
            assert minutes[0] == minute // MINUTE and minutes[-1] == minute // MINUTE + 1
            assert a.stats.rate_waits + b.stats.rate_waits == 1

    asyncio.run(main())


def test_retry_after_backoff_and_giving_up_name_the_endpoint() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            add_series(fake, "BTCUSDT", "1m", 0, MINUTE * 10)
            fake.fail_next(path="/api/v3/klines", status=429, retry_after=1)
            fake.fail_next(path="/api/v3/klines", status=503, html=True, after=1)
            async with _client(fake) as rest:
                began = time.monotonic()
                page = await rest.klines("BTCUSDT", "1m", 0, None, 5)
                assert page.received == 5 and rest.stats.retries == 2
                assert time.monotonic() - began >= 1.0 and rest.stats.waited_s >= 1.0
                fake.fail_next(path="/api/v3/klines", status=500, times=5)
                rest.max_retries = 1
                gave_up = rf"^{fake.api_url}: klines failed after 1 retries \(HTTP 500\)$"
                with pytest.raises(ExchangeError, match=gave_up):
                    await rest.klines("BTCUSDT", "1m")
                fake.reset()
                fake.fail_next(path="/api/v3/klines", status=400, code=-1100, msg="Illegal characters found.")
                with pytest.raises(ExchangeError, match=r"klines: HTTP 400 \(code -1100\): Illegal characters"):
                    await rest.klines("BTCUSDT", "1m")
                assert len(fake.requests_to("/api/v3/klines")) == 1          # a 4xx is not retried
                fake.fail_next(path="/api/v3/klines", status=418, retry_after=7200)
                with pytest.raises(ExchangeError, match="asks to wait 7200 s"):
                    await rest.klines("BTCUSDT", "1m")

    asyncio.run(main())


def test_unreachable_at_connect_is_an_exchange_error_naming_the_endpoint() -> None:
    async def main() -> None:
        async with FakeBinance() as fake:
            fake.refuse_connections()
            rest = _client(fake, max_retries=2, backoff_base=0.01)
            with pytest.raises(ExchangeError, match=rf"^{fake.api_url}: connect failed after 2 retries "
                                                    r"\(ClientConnectorError"):
                await rest.connect()
            assert rest.stats.retries == 2

    asyncio.run(main())


def test_backoff_has_jitter_within_bounds() -> None:
    rest = BinanceRESTClient("http://x/api", backoff_base=1.0, backoff_cap=8.0)
    waits = [rest._backoff(3) for _ in range(200)]
    assert all(4.0 <= w <= 8.0 for w in waits) and len(set(waits)) > 150
    assert all(0.5 <= rest._backoff(0) <= 1.0 for _ in range(50))
