"""SIGNED REST endpoints of the fake: order (POST/GET/DELETE), order/test, openOrders, account, myTrades."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.binance.account import get_account, verify_rest
from tests.fakes.binance.orders import OPEN, Engine, Order, d8
from tests.fakes.binance.server import CONTROL_ACTIONS, MODULES, ApiError, FakeBinance


def _find(engine: Engine, params: dict[str, str]) -> Order | None:
    if "orderId" in params:
        order = engine.orders.get(int(params["orderId"]))
    elif "origClientOrderId" in params:
        found = [o for o in engine.orders.values() if o.client_order_id == params["origClientOrderId"]]
        order = found[-1] if found else None
    else:
        raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return order if order is not None and order.symbol == params.get("symbol") else None


def install(fake: FakeBinance) -> None:
    engine = Engine(fake)
    fake.orders = engine

    @fake.endpoint("POST", "/api/v3/order", weight=1)
    async def new_order(request: Any, params: dict[str, str]) -> web.Response:
        account = await verify_rest(fake, request, params)
        order = engine.place(account, params)
        kind = params.get("newOrderRespType") or ("FULL" if order.type in ("MARKET", "LIMIT") else "ACK")
        if engine.fail_after_placing_left:
            status, code = engine.fail_after_placing_left.pop(0)
            raise ApiError(status, code, "An unknown error occurred while processing the request."
                           if code != -1007 else "Timeout waiting for response from backend server. "
                           "Send status unknown; execution status unknown.")
        count = sum(1 for r in fake.requests if r["path"] == "/api/v3/order" and r["method"] == "POST")
        return web.json_response(order.response(kind, order.time),
                                 headers={"X-MBX-ORDER-COUNT-10S": str(min(count, 50)),
                                          "X-MBX-ORDER-COUNT-1D": str(count)})

    @fake.endpoint("POST", "/api/v3/order/test", weight=1)
    async def test_order(request: Any, params: dict[str, str]) -> dict[str, Any]:
        from tests.fakes.binance.exchange_info import symbol_info
        from tests.fakes.binance.order_checks import check_new_order

        await verify_rest(fake, request, params)
        check_new_order(params, symbol_info(fake, params.get("symbol", "")), engine.reference_price(params["symbol"]))
        return {}

    @fake.endpoint("GET", "/api/v3/order", weight=4)
    async def get_order(request: Any, params: dict[str, str]) -> dict[str, Any]:
        await verify_rest(fake, request, params)
        engine.match(get_account(fake))
        order = _find(engine, params)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return order.rest()

    @fake.endpoint("DELETE", "/api/v3/order", weight=1)
    async def cancel_order(request: Any, params: dict[str, str]) -> dict[str, Any]:
        account = await verify_rest(fake, request, params)
        order = _find(engine, params)
        if order is None or order.status not in OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        cancel_id = params.get("newClientOrderId") or f"cancel{order.order_id}"
        engine.cancel(account, order, cancel_id)
        rest = order.rest()
        return {"symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
                "orderListId": -1, "clientOrderId": cancel_id, "transactTime": order.update_time,
                **{k: rest[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty",
                                        "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                                        "selfTradePreventionMode")}}

    @fake.endpoint("GET", "/api/v3/openOrders", weight=lambda p: 6 if p.get("symbol") else 80)
    async def open_orders(request: Any, params: dict[str, str]) -> list[dict[str, Any]]:
        await verify_rest(fake, request, params)
        engine.match(get_account(fake))
        return [o.rest() for o in engine.orders.values()
                if o.status in OPEN and params.get("symbol") in (None, o.symbol)]

    @fake.endpoint("GET", "/api/v3/account", weight=20)
    async def account_info(request: Any, params: dict[str, str]) -> dict[str, Any]:
        account = await verify_rest(fake, request, params)
        engine.match(account)
        rate = d8(account.commission_rate)
        bps = int(account.commission_rate * 10000)
        balances = [{"asset": a, "free": d8(f), "locked": d8(lk)} for a, (f, lk) in sorted(account.balances.items())
                    if params.get("omitZeroBalances") != "true" or f or lk]
        return {"makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": d8(0), "seller": d8(0)},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": account.update_time, "accountType": "SPOT", "balances": balances,
                "permissions": ["SPOT"], "uid": 354937868}

    @fake.endpoint("GET", "/api/v3/myTrades", weight=lambda p: 5 if p.get("orderId") else 20)
    async def my_trades(request: Any, params: dict[str, str]) -> list[dict[str, Any]]:
        await verify_rest(fake, request, params)
        symbol = params.get("symbol")
        if not symbol:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        trades = [t for t in engine.trades if t.symbol == symbol]
        if "orderId" in params:
            trades = [t for t in trades if t.order_id == int(params["orderId"])]
        if "fromId" in params:
            trades = [t for t in trades if t.id >= int(params["fromId"])]
        if "startTime" in params:
            trades = [t for t in trades if t.time >= int(params["startTime"])]
        if "endTime" in params:
            trades = [t for t in trades if t.time <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        trades = trades[:limit] if "fromId" in params or "startTime" in params else trades[-limit:]
        return [t.rest() for t in trades]


def _control_account(fake: FakeBinance, body: dict[str, Any]) -> None:
    from tests.fakes.binance.account import setup_account

    setup_account(fake, **body)


CONTROL_ACTIONS.update({
    "account": _control_account,
    "price": lambda fake, b: fake.orders.set_price(b["symbol"], b.get("price")),
    "liquidity": lambda fake, b: fake.orders.set_liquidity(b["symbol"], b.get("quantity")),
    "fills_per_order": lambda fake, b: setattr(fake.orders, "fills_per_order", int(b["n"])),
    "fail_after_placing": lambda fake, b: fake.orders.fail_after_placing(int(b.get("n", 1)), int(b.get("status", 500)),
                                                                         int(b.get("code", -1000))),
    "place_by_hand": lambda fake, b: fake.orders.place(get_account(fake), {**b, "newClientOrderId":
                                                                         b.get("newClientOrderId", "web_hand")},
                                                       by_hand=True) and None,
    "my_trades": lambda fake, b: [t.rest() for t in fake.orders.trades],
    "balances": lambda fake, b: {a: [d8(f), d8(lk)] for a, (f, lk) in get_account(fake).balances.items()},
})
MODULES["orders_api"] = install
