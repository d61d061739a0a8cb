"""The fake's market streams and their faults, seen through python-binance 1.0.37 itself
(AsyncClient subclass with API_URL, BinanceSocketManager with STREAM_URL, as binance.md §4).

Expected values come from the candle file read here with the csv module, not from the fake."""

from __future__ import annotations

import asyncio
import csv
import itertools
import socket
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException

from tests.fakes.binance import FakeBinance, FakeBinanceProcess, add_candles, set_filters

CANDLES = Path(__file__).resolve().parents[1] / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 100
pytestmark = pytest.mark.timeout(60)


def file_rows() -> list[tuple[Decimal, ...]]:
    with CANDLES.open(newline="") as handle:
        return [tuple(Decimal(x) for x in row[1:6]) for row in list(csv.reader(handle))[1:]]


async def client_for(fake: FakeBinance) -> tuple[AsyncClient, BinanceSocketManager]:
    local = type("Local", (AsyncClient,), {"API_URL": fake.api_url, "WS_API_URL": fake.ws_api_url})
    client = await local.create()
    manager = BinanceSocketManager(client)
    manager.STREAM_URL = fake.stream_url
    return client, manager


async def collect(stream: Any, closed: int, limit_s: float = 15.0, on_message: Any = None) -> list[dict]:
    """Messages until `closed` closed klines arrived (bounded by `limit_s`)."""
    got: list[dict] = []
    deadline = time.monotonic() + limit_s
    while sum(1 for m in got if _kline(m).get("x")) < closed:
        assert time.monotonic() < deadline, f"only {got!r}"
        message = await asyncio.wait_for(stream.recv(), deadline - time.monotonic())
        got.append(message)
        if on_message is not None:
            on_message(message, got)
    return got


def _kline(message: dict) -> dict:
    return (message.get("data", message) or {}).get("k", {}) if isinstance(message, dict) else {}


def closed_times(messages: list[dict]) -> list[int]:
    return [_kline(m)["t"] for m in messages if _kline(m).get("x")]


def test_kline_socket_sends_the_file_candles_on_the_clock_and_rest_agrees() -> None:
    expected = file_rows()

    async def scenario() -> None:
        async with FakeBinance() as fake:
            series = add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            try:
                before = (await client.get_server_time())["serverTime"]
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    messages = await collect(stream, 3)
                after = (await client.get_server_time())["serverTime"]
                rest = await client.get_klines(symbol="BTCUSDT", interval="1s", limit=1000)
            finally:
                await client.close_connection()
            closed = [m for m in messages if m["k"]["x"]]
            times = [m["k"]["t"] for m in closed]
            assert [b - a for a, b in itertools.pairwise(times)] == [1000, 1000]
            for message in closed:
                k = message["k"]
                index = (k["t"] - series.start_ms) // 1000
                assert index >= HISTORY  # live bars only: nothing from before the connection
                assert (Decimal(k["o"]), Decimal(k["h"]), Decimal(k["l"]), Decimal(k["c"]),
                        Decimal(k["v"])) == expected[index]
                assert k["T"] == k["t"] + 999 and k["s"] == "BTCUSDT" and k["i"] == "1s"
                assert k["T"] < message["E"] and before <= message["E"] <= after
                assert set(message) == {"e", "E", "s", "k"} and message["e"] == "kline"
            # open-kline updates between the closed ones, for the bar that closes next
            first, last = messages.index(closed[0]), messages.index(closed[-1])
            between = [m["k"] for m in messages[first + 1:last] if not m["k"]["x"]]
            assert between and {k["t"] for k in between} <= set(times[1:])
            # REST: the whole history before now, the still-open bar last, identical closed values
            assert rest[0][0] == series.start_ms and rest[-1][6] > after - 1000
            for row in rest[:-1]:
                index = (row[0] - series.start_ms) // 1000
                assert tuple(Decimal(x) for x in row[1:6]) == expected[index]
            assert len(rest) >= HISTORY + 3

    asyncio.run(scenario())


def test_combined_stream_wraps_each_symbol_and_server_shutdown() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=10)
            add_candles(fake, "ETHUSDT", "1s", CANDLES, history=20)
            client, manager = await client_for(fake)
            try:
                names = ["btcusdt@kline_1s", "ethusdt@kline_1s"]
                async with manager.multiplex_socket(names) as stream:
                    messages = await collect(stream, 2)
                    assert fake.streams.server_shutdown() == 1
                    shutdown = await asyncio.wait_for(stream.recv(), 5)
                    while shutdown.get("stream") != "!serverShutdown":
                        shutdown = await asyncio.wait_for(stream.recv(), 5)
                async with manager.kline_socket("BTCUSDT", "1s") as raw:
                    await asyncio.wait_for(raw.recv(), 5)
                    fake.streams.server_shutdown()
                    raw_shutdown = await asyncio.wait_for(raw.recv(), 5)
                    while raw_shutdown.get("e") == "kline":
                        raw_shutdown = await asyncio.wait_for(raw.recv(), 5)
            finally:
                await client.close_connection()
            assert {m["stream"] for m in messages} == set(names)
            assert all(m["data"]["s"] == m["stream"].split("@")[0].upper() for m in messages)
            assert set(shutdown) == {"stream", "data"} and shutdown["data"]["e"] == "serverShutdown"
            assert set(raw_shutdown) == {"e", "E"} and raw_shutdown["e"] == "serverShutdown"

    asyncio.run(scenario())


@pytest.mark.parametrize(("mode", "error_type"), [("abort", "ConnectionClosedError"), ("close", "ConnectionClosedOK")])
def test_after_a_drop_python_binance_reports_errors_in_band_and_data_resumes(mode: str, error_type: str) -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    def drop_after_first_close(message: dict, got: list[dict]) -> None:
                        if _kline(message).get("x") and len(closed_times(got)) == 1:
                            assert fake.streams.drop(mode) == 1

                    messages = await collect(stream, 3, on_message=drop_after_first_close)
            finally:
                await client.close_connection()
            errors = [m for m in messages if m.get("e") == "error"]
            assert [e["type"] for e in errors] == [error_type, "BinanceWebsocketClosed"]
            after = messages[messages.index(errors[-1]) + 1:]
            assert closed_times(after) and closed_times(messages) == sorted(set(closed_times(messages)))
            assert fake.streams.connects == 2

    asyncio.run(scenario())


def test_stall_keeps_the_socket_open_and_sends_nothing_then_resumes_live() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    await collect(stream, 1)
                    assert fake.streams.stall(2.5) == 1
                    stalled_at = fake.server_time_ms()
                    messages = await collect(stream, 1)
            finally:
                await client.close_connection()
            assert all(m.get("e") == "kline" for m in messages)  # no error: the socket never closed
            assert messages[0]["E"] - stalled_at >= 2400
            assert fake.streams.connects == 1

    asyncio.run(scenario())


def test_duplicate_and_reordered_klines() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    first = closed_times(await collect(stream, 1))[0]
                    fake.streams.duplicate_next()
                    dup = closed_times(await collect(stream, 2))
                    fake.streams.reorder_next()
                    swapped = closed_times(await collect(stream, 2))
            finally:
                await client.close_connection()
            assert dup == [first + 1000, first + 1000]
            assert swapped == [first + 3000, first + 2000]

    asyncio.run(scenario())


def test_heartbeat_keeps_python_binance_connected_and_drops_a_client_that_never_pongs() -> None:
    async def scenario() -> None:
        async with FakeBinance(heartbeat=0.4) as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    messages = await collect(stream, 3)  # ~3 s: several pings answered
                assert all(m.get("e") == "kline" for m in messages) and fake.streams.connects == 1
                async with aiohttp.ClientSession() as session, session.ws_connect(
                        f"{fake.stream_url}ws/btcusdt@kline_1s", autoping=False) as silent:
                    kinds = []
                    async for msg in silent:  # pings arrive; never answered -> the server closes
                        kinds.append(msg.type)
                assert aiohttp.WSMsgType.PING in kinds and silent.closed
            finally:
                await client.close_connection()

    asyncio.run(scenario())


def test_rest_klines_fail_for_the_next_n_requests_and_market_unreachable() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, _ = await client_for(fake)
            try:
                fake.fail_next(path="/api/v3/klines", status=503, times=2)
                fake.fail_next(path="/api/v3/klines", status=429, retry_after=7)
                seen = []
                for _ in range(3):
                    with pytest.raises(BinanceAPIException) as info:
                        await client.get_klines(symbol="BTCUSDT", interval="1s", limit=5)
                    seen.append((info.value.status_code, info.value.response.headers.get("Retry-After")))
                assert seen == [(503, None), (503, None), (429, "7")]
                assert len(await client.get_klines(symbol="BTCUSDT", interval="1s", limit=5)) == 5
                fake.refuse_connections()
                async with aiohttp.ClientSession() as session:
                    with pytest.raises(aiohttp.ClientConnectorError):
                        await session.get(f"{fake.base_url}/api/v3/ping")
                    fake.accept_connections()
                    await asyncio.sleep(0.05)
                    async with session.get(f"{fake.base_url}/api/v3/ping") as answer:
                        assert answer.status == 200
            finally:
                await client.close_connection()

    asyncio.run(scenario())


def test_exchange_info_filters_are_configurable() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1m", CANDLES, history=HISTORY)
            fake.state["symbols"] = ["ETHBTC"]
            set_filters(fake, "BTCUSDT", market_lot_size={"stepSize": "0.00000000"}, notional=None,
                        min_notional={"minNotional": "5.00000000"}, lot_size={"stepSize": "0.00001000"},
                        price_filter={"tickSize": "0.01000000", "maxPrice": "1000000.00000000"})
            client, _ = await client_for(fake)
            try:
                info = await client.get_symbol_info("BTCUSDT")
                both = await client.get_exchange_info()
            finally:
                await client.close_connection()
            filters = {f["filterType"]: f for f in info["filters"]}
            assert filters["MARKET_LOT_SIZE"]["stepSize"] == "0.00000000"
            assert filters["LOT_SIZE"] == {"filterType": "LOT_SIZE", "minQty": "0.00100000",
                                           "maxQty": "100000.00000000", "stepSize": "0.00001000"}
            assert filters["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "minNotional": "5.00000000",
                                               "applyToMarket": True, "avgPriceMins": 5}
            assert "NOTIONAL" not in filters and filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
            assert (info["baseAsset"], info["quoteAsset"]) == ("BTC", "USDT")
            assert [s["symbol"] for s in both["symbols"]] == ["BTCUSDT", "ETHBTC"]
            eth = {f["filterType"] for f in both["symbols"][1]["filters"]}
            assert "NOTIONAL" in eth and "MIN_NOTIONAL" not in eth

    asyncio.run(scenario())


def test_thread_mode_faults_from_the_test_thread() -> None:
    with FakeBinance().run_in_thread() as fake:
        add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)

        async def scenario() -> list[dict]:
            client, manager = await client_for(fake)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    return await collect(stream, 2, on_message=lambda m, got: len(got) == 1 and fake.streams.drop())
            finally:
                await client.close_connection()

        messages = asyncio.run(scenario())
        assert [m["type"] for m in messages if m.get("e") == "error"][-1] == "BinanceWebsocketClosed"
        fake.refuse_connections(seconds=0.3)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", fake.port), timeout=1).close()
        time.sleep(0.6)
        socket.create_connection(("127.0.0.1", fake.port), timeout=1).close()


def test_process_mode_streams_and_control() -> None:
    with FakeBinanceProcess("--candles", f"BTCUSDT:1s:{HISTORY}:{CANDLES}", "--heartbeat", "5") as fake:
        async def scenario() -> list[dict]:
            local = FakeBinance.__new__(FakeBinance)
            local.host, local.port = "127.0.0.1", int(fake.base_url.rsplit(":", 1)[1])
            client, manager = await client_for(local)
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    first = closed_times(await collect(stream, 1))[0]
                    fake.control("duplicate", n=1)
                    messages = await collect(stream, 2)
                    assert closed_times(messages) == [first + 1000, first + 1000]
                    assert fake.control("drop", mode="close")["result"] == 1
                    return await collect(stream, 1)
            finally:
                await client.close_connection()

        messages = asyncio.run(scenario())
        errors = [m["type"] for m in messages if m.get("e") == "error"]
        assert errors == ["ConnectionClosedOK", "BinanceWebsocketClosed"]
        stats = fake.control("streams")["result"]
        assert stats["connects"] == 2


def test_live_subscribe_on_a_bare_socket() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{fake.stream_url}ws") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1s"], "id": 1})
                assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
                replies = [await ws.receive_json(timeout=5) for _ in range(3)]
            assert {"result": ["btcusdt@kline_1s"], "id": 2} in replies
            assert any(r.get("e") == "kline" for r in replies)

    asyncio.run(scenario())


def test_market_unreachable_then_back_python_binance_reconnects() -> None:
    async def scenario() -> None:
        async with FakeBinance() as fake:
            add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
            client, manager = await client_for(fake)
            local = type("Local", (AsyncClient,), {"API_URL": fake.api_url})
            try:
                async with manager.kline_socket("BTCUSDT", "1s") as stream:
                    await collect(stream, 1)
                    fake.refuse_connections(seconds=1.5)
                    fake.streams.drop()
                    with pytest.raises(aiohttp.ClientConnectorError):
                        await local.create()  # python-binance's own start: GET ping
                    messages = await collect(stream, 1)
            finally:
                await client.close_connection()
            assert [m["type"] for m in messages if m.get("e") == "error"][:2] == [
                "ConnectionClosedError", "BinanceWebsocketClosed"]
            assert messages[-1]["k"]["x"] and fake.streams.connects == 2

    asyncio.run(scenario())
