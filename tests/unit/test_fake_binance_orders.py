"""The fake's signed REST, matching engine and WS-API user stream, seen through python-binance 1.0.37
(create_order, get_order, get_account, get_my_trades, BinanceSocketManager.user_socket()).

Expected balances and fills are computed here from the pinned price and the commission rate."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException

from tests.fakes.binance import FakeBinance, FakeBinanceProcess, add_candles, set_filters
from tests.fakes.binance.account import setup_account
from tests.unit.test_fake_binance_streams import CANDLES

KEY, SECRET = "test-key", "test-secret"
PRICE = Decimal("20000.00")
pytestmark = pytest.mark.timeout(60)


async def start(fake: FakeBinance, secret: str = SECRET, usdt: str = "100000") -> tuple[AsyncClient, Any]:
    add_candles(fake, "BTCUSDT", "1s", CANDLES, history=100)
    if "account" not in fake.state:
        setup_account(fake, KEY, SECRET, {"USDT": usdt})
    fake.orders.set_price("BTCUSDT", PRICE)
    local = type("Local", (AsyncClient,), {"API_URL": fake.api_url, "WS_API_URL": fake.ws_api_url})
    client = await local.create(KEY, secret)
    client.ws_api.TIMEOUT = 4  # python-binance's exit waits up to one recv timeout (its issue #1584)
    return client, BinanceSocketManager(client)


async def events(socket: Any, n: int) -> list[dict]:
    return [await asyncio.wait_for(socket.recv(), 5) for _ in range(n)]


def run(scenario: Any) -> None:
    async def wrapped() -> None:
        async with FakeBinance() as fake:
            await scenario(fake)

    asyncio.run(wrapped())


def test_hmac_signature_over_query_plus_body_as_binance_computes_it() -> None:
    doc = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
           "&timestamp=1499827319559")
    doc_secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"  # rest-api.md's vector
    assert hmac.new(doc_secret.encode(), doc.encode(), hashlib.sha256).hexdigest() == expected

    async def scenario(fake: FakeBinance) -> None:
        setup_account(fake, "doc-key", doc_secret, {"BTC": "10"})
        fake.state["symbols"] = ["LTCBTC"]
        set_filters(fake, "LTCBTC", notional=None)  # the doc's order is worth 0.1 BTC
        fake.orders.set_price("LTCBTC", "0.1")
        fake.set_clock(now_ms=1499827319559 + 100)
        query, body = doc[:33], doc[34:]  # split between the URL and the form body
        mixed = hmac.new(doc_secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()  # no separator
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with aiohttp.ClientSession() as session:
            async def post(q: str, b: str, key: str | None = "doc-key") -> tuple[int, dict]:
                headers = {**form, **({"X-MBX-APIKEY": key} if key else {})}
                async with session.post(f"{fake.api_url}/v3/order?{q}", data=b, headers=headers) as answer:
                    return answer.status, await answer.json()

            assert (await post(doc + f"&signature={expected.upper()}", ""))[1]["status"] == "FILLED"
            assert (await post(query, body + f"&signature={mixed}"))[1]["status"] == "FILLED"
            assert await post(query, body + f"&signature={expected}") == (
                400, {"code": -1022, "msg": "Signature for this request is not valid."})
            assert (await post(doc + f"&signature={expected}", "", key="other"))[1]["code"] == -2015
            assert (await post(doc + f"&signature={expected}", "", key=None))[1]["code"] == -2014
            fake.set_clock(now_ms=1499827319559 + 6000)
            assert (await post(doc + f"&signature={expected}", ""))[1] == {
                "code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
        assert len(fake.orders.trades) == 2

    run(scenario)


def test_clock_skew_gives_1021_both_ways() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, _ = await start(fake)
        try:
            for offset, text in ((-5000, "1000ms ahead of the server's time"), (20000, "outside of the recvWindow")):
                fake.set_clock(offset_ms=offset)
                with pytest.raises(BinanceAPIException) as info:
                    await client.get_account()
                assert info.value.code == -1021 and text in info.value.message
            fake.set_clock(offset_ms=20000)
            client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
            assert (await client.get_account())["accountType"] == "SPOT"  # re-synced: accepted
        finally:
            await client.close_connection()

    run(scenario)


def test_market_order_partially_fills_then_expires_and_the_user_stream_says_so() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, manager = await start(fake)
        fake.orders.set_liquidity("BTCUSDT", "0.004")
        fake.orders.fills_per_order = 2
        try:
            async with manager.user_socket() as user:
                answer = await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                                   newClientOrderId="c1")
                got = await events(user, 5)
                account = await client.get_account()
                trades = await client.get_my_trades(symbol="BTCUSDT")
                order = await client.get_order(symbol="BTCUSDT", origClientOrderId="c1")
        finally:
            await client.close_connection()
        assert (answer["status"], answer["executedQty"], answer["expiryReason"]) == ("EXPIRED", "0.00400000",
                                                                                    "INSUFFICIENT_LIQUIDITY")
        assert [Decimal(f["qty"]) for f in answer["fills"]] == [Decimal("0.002")] * 2
        assert all(Decimal(f["price"]) == PRICE and f["commissionAsset"] == "BTC" for f in answer["fills"])
        assert [(e["e"], e.get("x"), e.get("X")) for e in got] == [
            ("executionReport", "NEW", "NEW"), ("executionReport", "TRADE", "PARTIALLY_FILLED"),
            ("executionReport", "TRADE", "PARTIALLY_FILLED"), ("executionReport", "EXPIRED", "EXPIRED"),
            ("outboundAccountPosition", None, None)]
        assert [t["id"] for t in trades] == [f["tradeId"] for f in answer["fills"]] == [e["t"] for e in got[1:3]]
        balances = {b["asset"]: Decimal(b["free"]) for b in account["balances"]}
        assert balances == {"USDT": Decimal(100000) - Decimal("0.004") * PRICE,
                            "BTC": Decimal("0.004") - Decimal("0.004") * Decimal("0.001")}
        assert {b["a"]: Decimal(b["f"]) for b in got[4]["B"]} == balances
        assert order["status"] == "EXPIRED" and order["executedQty"] == "0.00400000"

    run(scenario)


def test_limit_order_rests_fills_when_price_crosses_and_cancel_unlocks() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, manager = await start(fake)
        try:
            async with manager.user_socket() as user:
                placed = await client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                                   quantity="0.010", price="19000.000000", newOrderRespType="RESULT")
                assert placed["status"] == "NEW" and "fills" not in placed
                assert [o["orderId"] for o in await client.get_open_orders(symbol="BTCUSDT")] == [placed["orderId"]]
                locked = {b["asset"]: b for b in (await client.get_account())["balances"]}["USDT"]
                assert Decimal(locked["locked"]) == Decimal("190") and Decimal(locked["free"]) == Decimal("99810")
                fake.orders.set_price("BTCUSDT", "18900")
                got = await events(user, 4)  # NEW, position (locked), TRADE FILLED, position
                assert (got[2]["x"], got[2]["X"], got[2]["L"], got[2]["m"]) == ("TRADE", "FILLED", "19000.00000000",
                                                                                 True)
                assert (await client.get_order(symbol="BTCUSDT", orderId=placed["orderId"]))["status"] == "FILLED"
                resting = await client.create_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC",
                                                    quantity="0.005", price="25000.000000", newClientOrderId="s1")
                canceled = await client.cancel_order(symbol="BTCUSDT", origClientOrderId="s1", newClientOrderId="k1")
                cancel_event = next(e for e in await events(user, 4) if e.get("x") == "CANCELED")
                account = await client.get_account()
        finally:
            await client.close_connection()
        assert resting["status"] == "NEW" and canceled["status"] == "CANCELED"
        assert (cancel_event["c"], cancel_event["C"]) == ("k1", "s1")
        balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}
        assert balances == {"USDT": (Decimal(100000) - Decimal(190), 0), "BTC": (Decimal("0.00999"), 0)}

    run(scenario)


def test_rejections_duplicate_balance_and_filters() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, _ = await start(fake, usdt="100")
        try:
            await client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                      quantity="0.001", price="19000", newClientOrderId="dup")
            cases = [
                (dict(type="LIMIT", timeInForce="GTC", quantity="0.001", price="19000", newClientOrderId="dup"),
                 (-2010, "Duplicate order sent.")),
                (dict(type="MARKET", quantity="1.000"),
                 (-2010, "Account has insufficient balance for requested action.")),
                (dict(type="MARKET", quantity="0.0015"), (-1013, "Filter failure: LOT_SIZE")),
                (dict(type="LIMIT", timeInForce="GTC", quantity="0.001", price="19000.0000005"),
                 (-1013, "Filter failure: PRICE_FILTER")),
                (dict(type="LIMIT", timeInForce="GTC", quantity="0.001", price="5000"),
                 (-1013, "Filter failure: NOTIONAL")),
                (dict(type="STOP"), (-1116, "Invalid orderType.")),
            ]
            for params, expected in cases:
                with pytest.raises(BinanceAPIException) as info:
                    await client.create_order(symbol="BTCUSDT", side="BUY", **params)
                assert (info.value.code, info.value.message) == expected, params
        finally:
            await client.close_connection()
        assert len(fake.orders.orders) == 1

    run(scenario)


def test_5xx_after_placement_and_429_before_it() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, _ = await start(fake)
        try:
            fake.orders.fail_after_placing(status=502)
            with pytest.raises(BinanceAPIException) as info:
                await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                          newClientOrderId="unknown-1")
            assert info.value.status_code == 502
            found = await client.get_order(symbol="BTCUSDT", origClientOrderId="unknown-1")
            assert found["status"] == "FILLED" and len(await client.get_my_trades(symbol="BTCUSDT")) == 1
            fake.fail_next(path="/api/v3/order", status=429, retry_after=3)
            with pytest.raises(BinanceAPIException) as info:
                await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            assert (info.value.status_code, info.value.response.headers["Retry-After"]) == (429, "3")
        finally:
            await client.close_connection()
        assert len(fake.orders.orders) == 1

    run(scenario)


def test_ws_api_subscription_checks_the_signature_and_lists_and_terminates() -> None:
    async def scenario(fake: FakeBinance) -> None:
        bad, bad_manager = await start(fake, secret="wrong")
        try:
            with pytest.raises(BinanceAPIException) as info:
                async with bad_manager.user_socket():
                    pass
            assert info.value.code == -1022
        finally:
            await bad.close_connection()
        client, manager = await start(fake)
        try:
            user = manager.user_socket()
            await user.__aenter__()
            listed = await client._ws_api_request("session.subscriptions", signed=False, params={})
            assert listed == [{"subscriptionId": 0}]
            fake.ws_api.list_status("BTCUSDT")
            fake.ws_api.external_lock_update("BTC", "0.5")
            fake.ws_api.balance_update("USDT", "25")
            fake.ws_api.terminate_streams()
            got = await events(user, 5)
            with pytest.raises(BinanceAPIException) as gone:  # python-binance unsubscribes a terminated stream
                await user.__aexit__(None, None, None)
            assert gone.value.code == -2036
        finally:
            await client.close_connection()
        assert [e["e"] for e in got] == ["listStatus", "externalLockUpdate", "balanceUpdate",
                                         "outboundAccountPosition", "eventStreamTerminated"]
        assert got[3]["B"] == [{"a": "USDT", "f": "100025.00000000", "l": "0.00000000"}]

    run(scenario)


def test_ws_api_drop_then_a_new_subscription_resumes_events_and_hand_placed_orders_show() -> None:
    async def scenario(fake: FakeBinance) -> None:
        client, manager = await start(fake)
        try:
            user = manager.user_socket()
            await user.__aenter__()
            assert fake.ws_api.drop() == 1
            errors = await events(user, 2)
            assert [e["e"] for e in errors] == ["error", "error"]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(user.__aexit__(None, None, None), 5)
            async with manager.user_socket() as fresh:
                fake.orders.place_by_hand("BTCUSDT", "BUY", "MARKET", "0.002")
                got = await events(fresh, 3)
            trades = await client.get_my_trades(symbol="BTCUSDT", fromId=0)
        finally:
            await client.close_connection()
        assert [e.get("x") for e in got] == ["NEW", "TRADE", None] and got[0]["c"].startswith("web_")
        assert [t["orderId"] for t in trades] == [got[0]["i"]] and fake.ws_api.connects >= 2

    run(scenario)


def test_ws_api_server_shutdown_has_no_subscription_id() -> None:
    async def scenario(fake: FakeBinance) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(fake.ws_api_url) as ws:
            await ws.send_json({"id": "1", "method": "ping", "params": {}})
            assert (await ws.receive_json(timeout=5)) == {"id": "1", "status": 200, "result": {}}
            while fake.ws_api.server_shutdown() == 0:
                await asyncio.sleep(0.01)
            shutdown = await ws.receive_json(timeout=5)
        assert set(shutdown) == {"event"} and shutdown["event"]["e"] == "serverShutdown"

    run(scenario)


def test_process_mode_account_orders_and_user_stream_over_control() -> None:
    with FakeBinanceProcess("--candles", f"BTCUSDT:1s:100:{CANDLES}", "--account", f"{KEY}:{SECRET}:USDT=1000") as fake:
        fake.control("price", symbol="BTCUSDT", price="20000")

        async def scenario() -> tuple[dict, list[dict]]:
            local = type("Local", (AsyncClient,), {"API_URL": fake.api_url,
                                                   "WS_API_URL": fake.ws_api_url})
            client = await local.create(KEY, SECRET)
            client.ws_api.TIMEOUT = 4
            try:
                async with BinanceSocketManager(client).user_socket() as user:
                    fake.control("place_by_hand", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
                    got = await events(user, 3)
                return await client.get_account(), got
            finally:
                await client.close_connection()

        account, got = asyncio.run(scenario())
        trades = fake.control("my_trades")["result"]
        assert [(e["e"], e.get("x")) for e in got] == [("executionReport", "NEW"), ("executionReport", "TRADE"),
                                                       ("outboundAccountPosition", None)]
        assert [t["price"] for t in trades] == ["20000.00000000"] and trades[0]["id"] == got[1]["t"]
        usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
        assert Decimal(usdt["free"]) == Decimal(1000) - Decimal("0.010") * PRICE
        assert fake.control("balances")["result"]["USDT"] == [usdt["free"], usdt["locked"]]


def test_commission_in_bnb_and_a_quote_order_qty_market_order() -> None:
    async def scenario(fake: FakeBinance) -> None:
        account = setup_account(fake, KEY, SECRET, {"USDT": "1000", "BNB": "1"}, commission_asset="BNB")
        account.commission_asset_price = Decimal("400")
        client, _ = await start(fake)
        try:
            answer = await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="150")
            trades = await client.get_my_trades(symbol="BTCUSDT", orderId=answer["orderId"])
            balances = {b["asset"]: Decimal(b["free"]) for b in (await client.get_account())["balances"]}
        finally:
            await client.close_connection()
        qty = Decimal("0.007")  # 150 / 20000 = 0.0075, down to the 0.001 lot step
        fee = qty * PRICE * Decimal("0.001") / 400
        assert Decimal(answer["executedQty"]) == qty and Decimal(answer["cummulativeQuoteQty"]) == qty * PRICE
        assert [(t["commissionAsset"], Decimal(t["commission"])) for t in trades] == [("BNB", fee)]
        assert balances == {"USDT": 1000 - qty * PRICE, "BTC": qty, "BNB": 1 - fee}

    run(scenario)
