"""BinanceTradingClient and BinanceBroker against the loopback fake (real python-binance, real HTTP):
the order rules of trading.py - -1021 re-synced once, 429 not placed, -2010/-1013 refused, a 5xx
after placement UNKNOWN then found by client order id - and quantities as Decimal strings on the
lot step. What the fake holds (its orders and trades) is the truth each outcome is checked against."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from coin_cli.integrations.binance.filters import parse_symbol_info
from coin_cli.integrations.binance.rest import BinanceRESTClient
from coin_cli.integrations.binance.trading import BinanceTradingClient, OrderRefused, OutcomeUnknown, RateLimited
from coin_cli.runtime.brokers.binance import BinanceBroker
from coin_cli.runtime.executions import OrderUpdate, from_execution_report
from coin_cli.runtime.orders import OrderIntent
from tests.fakes.binance import FakeBinance, add_candles, set_filters
from tests.fakes.binance.account import setup_account
from tests.unit.test_fake_binance_streams import CANDLES

KEY, SECRET = "trade-key", "trade-secret"
PRICE = Decimal("20000.00")
pytestmark = pytest.mark.timeout(60)


def run(scenario: Any, usdt: str = "100000") -> None:
    async def wrapped() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=100)
            setup_account(fake, KEY, SECRET, {"USDT": usdt})
            fake.orders.set_price("BTCUSDT", PRICE)
            rest = await BinanceRESTClient(fake.api_url, max_retries=1, backoff_base=0.01, api_key=KEY,
                                           api_secret=SECRET).connect()
            try:
                await scenario(fake, BinanceTradingClient(rest))
            finally:
                await rest.close()

    asyncio.run(wrapped())


def test_clock_skew_is_resynced_once_and_the_order_placed_once() -> None:
    async def scenario(fake: FakeBinance, trading: BinanceTradingClient) -> None:
        fake.set_clock(offset_ms=20_000)            # the server now runs 20 s ahead of our offset
        answer = await trading.place_market("BTCUSDT", "BUY", "0.01", "coin-BTCUSDT-1-0")
        assert answer["status"] == "FILLED" and trading.clock_resyncs == 1
        posts = [r for r in fake.requests_to("/api/v3/order") if r["method"] == "POST"]
        assert [r["status"] for r in posts] == [400, 200]      # -1021 first (not placed), then placed
        assert len(fake.orders.orders) == 1

    run(scenario)


def test_refusals_rate_limits_and_unknown_outcomes() -> None:
    async def scenario(fake: FakeBinance, trading: BinanceTradingClient) -> None:
        with pytest.raises(OrderRefused) as refused:
            await trading.place_market("BTCUSDT", "BUY", "1000", "coin-BTCUSDT-2-0")   # 20M USDT
        assert refused.value.code == -2010 and "insufficient balance" in refused.value.message
        with pytest.raises(OrderRefused) as lot:
            await trading.place_market("BTCUSDT", "BUY", "0.0001", "coin-BTCUSDT-3-0")  # under LOT_SIZE
        assert lot.value.code == -1013 and "LOT_SIZE" in lot.value.message
        fake.fail_next(path="/api/v3/order", status=429, retry_after=7)
        with pytest.raises(RateLimited) as limited:
            await trading.place_market("BTCUSDT", "BUY", "0.01", "coin-BTCUSDT-4-0")
        assert (limited.value.status, limited.value.wait_s) == (429, 7.0)
        assert not fake.orders.orders                          # none of the three reached the book
        fake.orders.fail_after_placing(1, 500)
        with pytest.raises(OutcomeUnknown):
            await trading.place_market("BTCUSDT", "BUY", "0.01", "coin-BTCUSDT-5-0")
        found = await trading.query_order("BTCUSDT", "coin-BTCUSDT-5-0")
        assert found is not None and found["status"] == "FILLED" and len(fake.orders.orders) == 1
        assert await trading.query_order("BTCUSDT", "coin-BTCUSDT-never") is None     # -2013

    run(scenario)


def test_broker_sends_decimal_quantities_and_resolves_an_unknown_order_by_query() -> None:
    async def scenario(fake: FakeBinance, trading: BinanceTradingClient) -> None:
        set_filters(fake, "BTCUSDT", market_lot_size={"minQty": "0.00100000", "maxQty": "100.00000000",
                                                      "stepSize": "0.00100000"})
        filters = parse_symbol_info(await trading.rest.exchange_info_raw("BTCUSDT"))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        broker = BinanceBroker("BTCUSDT", filters, query_backoff=0.01)
        broker.attach(trading, queue)
        # 0.1 + 0.2 in binary floating point is 0.30000000000000004: the wire gets "0.3"
        intent = OrderIntent(1, "coin-BTCUSDT-6-0", 0, 1, 0, 0.1 + 0.2, 0.5, 20000.0, "ok")
        assert broker.quantity(intent) == "0.3"
        fake.orders.fail_after_placing(1, 500)
        broker.submit(intent)
        assert broker.busy
        first: OrderUpdate = await asyncio.wait_for(queue.get(), 10)
        second: OrderUpdate = await asyncio.wait_for(queue.get(), 10)
        assert (first.status, second.status, second.source) == ("UNKNOWN", "FILLED", "query")
        trades = [t for t in fake.orders.trades]
        assert [e.trade_id for e in second.executions] == [t.id for t in trades]
        assert sum(e.qty for e in second.executions) == pytest.approx(0.3)
        posts = [r for r in fake.requests_to("/api/v3/order") if r["method"] == "POST"]
        assert [r["params"]["quantity"] for r in posts] == ["0.3"]     # one request; queried, not re-sent

    run(scenario)


def test_execution_report_of_a_cancel_names_the_original_order() -> None:
    # binance.md §3: in a cancel event `c` is the cancel's own id and `C` the order's
    report = {"e": "executionReport", "x": "CANCELED", "X": "CANCELED", "c": "cancel-own-id", "C": "coin-BTCUSDT-7-0",
              "i": 42, "S": "BUY", "z": "0.00000000", "t": -1}
    update = from_execution_report(report)
    assert (update.client_order_id, update.status, update.exchange_order_id, update.executions) == \
        ("coin-BTCUSDT-7-0", "CANCELED", 42, ())
    trade = {"e": "executionReport", "x": "TRADE", "X": "PARTIALLY_FILLED", "c": "coin-BTCUSDT-8-0", "i": 43,
             "S": "SELL", "z": "0.50000000", "t": 9, "l": "0.25000000", "L": "20000.00", "n": "5.0", "N": "USDT"}
    (execution,) = from_execution_report(trade).executions
    assert (execution.trade_id, execution.qty, execution.price, execution.commission, execution.commission_asset) == \
        (9, -0.25, 20000.0, 5.0, "USDT")


def test_broker_waits_retry_after_on_429_then_places_once() -> None:
    async def scenario(fake: FakeBinance, trading: BinanceTradingClient) -> None:
        filters = parse_symbol_info(await trading.rest.exchange_info_raw("BTCUSDT"))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        broker = BinanceBroker("BTCUSDT", filters, rate_limit_wait_cap=5.0)
        broker.attach(trading, queue)
        fake.fail_next(path="/api/v3/order", status=429, retry_after=1)
        started = asyncio.get_running_loop().time()
        broker.submit(OrderIntent(1, "coin-BTCUSDT-9-0", 0, 1, 0, 0.01, 0.5, 20000.0, "ok"))
        update: OrderUpdate = await asyncio.wait_for(queue.get(), 10)
        assert update.status == "FILLED" and asyncio.get_running_loop().time() - started >= 1.0
        posts = [r["status"] for r in fake.requests_to("/api/v3/order") if r["method"] == "POST"]
        assert posts == [429, 200] and len(fake.orders.orders) == 1
        # a wait beyond the cap: the decision is stale, the order is not sent again
        fake.fail_next(path="/api/v3/order", status=418, retry_after=60)
        broker.submit(OrderIntent(2, "coin-BTCUSDT-10-0", 0, 1, 0, 0.01, 0.5, 20000.0, "ok"))
        late: OrderUpdate = await asyncio.wait_for(queue.get(), 10)
        assert late.status == "REJECTED" and "418" in (late.detail or "") and len(fake.orders.orders) == 1

    run(scenario)


def test_a_refused_key_is_a_configuration_error_naming_the_variables() -> None:
    from coin_cli.errors import UsageError

    async def scenario(fake: FakeBinance, trading: BinanceTradingClient) -> None:
        wrong = await BinanceRESTClient(fake.api_url, max_retries=0, api_key="not-the-key",
                                        api_secret=SECRET).connect()
        try:
            with pytest.raises(UsageError, match=r"code -2015\): check BINANCE_API_KEY / BINANCE_API_SECRET"):
                await BinanceTradingClient(wrong).account()
        finally:
            await wrong.close()
        bad_secret = await BinanceRESTClient(fake.api_url, max_retries=0, api_key=KEY, api_secret="x").connect()
        try:
            with pytest.raises(UsageError, match=r"signature not valid"):
                await BinanceTradingClient(bad_secret).account()
        finally:
            await bad_secret.close()

    run(scenario)
