"""The fake's matching engine: orders against its own candle feed, balances, trades, user events.

Prices: the reference price of a symbol is the close of its candle at the fake's now (the still-open
candle part-formed, see candles.py), or `fake.orders.prices[symbol]` when set (a test can pin it).
- MARKET fills at the reference price, in `fills_per_order` trades. `liquidity[symbol]` caps what one
  MARKET order can take: the rest EXPIRES after the partial fill (as faqs/market_orders_faq.md).
- LIMIT rests (funds locked) and fills, as maker, at its limit price once the reference price crosses
  it (checked every `MATCH_EVERY_S` and on every order request).
- Commission: `rate * quantity` in the asset received, or in `account.commission_asset` (e.g. BNB)
  converted at `account.commission_asset_price`.
Every change sends executionReport / outboundAccountPosition to the WS-API subscribers (ws_api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.fakes.binance.account import ZERO, Account, get_account
from tests.fakes.binance.exchange_info import known_symbols, symbol_info
from tests.fakes.binance.server import ApiError, FakeBinance

MATCH_EVERY_S = 0.1
OPEN = ("NEW", "PARTIALLY_FILLED")


def d8(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass
class Trade:
    id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def rest(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "id": self.id, "orderId": self.order_id, "orderListId": -1,
                "price": d8(self.price), "qty": d8(self.qty), "quoteQty": d8(self.price * self.qty),
                "commission": d8(self.commission), "commissionAsset": self.commission_asset, "time": self.time,
                "isBuyer": self.is_buyer, "isMaker": self.is_maker, "isBestMatch": True}


@dataclass
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    base: str
    quote: str
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    by_hand: bool = False
    trades: list[Trade] = field(default_factory=list)

    def rest(self) -> dict[str, Any]:
        """GET /api/v3/order shape (rest_get_order.json)."""
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_order_id, "price": d8(self.price), "origQty": d8(self.orig_qty),
                "executedQty": d8(self.executed), "cummulativeQuoteQty": d8(self.cum_quote), "status": self.status,
                "timeInForce": self.time_in_force, "type": self.type, "side": self.side, "stopPrice": d8(ZERO),
                "icebergQty": d8(ZERO), "time": self.time, "updateTime": self.update_time or self.time,
                "isWorking": True, "workingTime": self.time, "origQuoteOrderQty": d8(self.orig_quote_qty),
                "selfTradePreventionMode": "NONE"}

    def response(self, kind: str, transact_time: int) -> dict[str, Any]:
        """POST /api/v3/order answer: ACK, RESULT or FULL (rest_order_*.json)."""
        out: dict[str, Any] = {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                               "clientOrderId": self.client_order_id, "transactTime": transact_time}
        if kind == "ACK":
            return out
        rest = self.rest()
        out.update({k: rest[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty",
                                         "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                                         "workingTime")})
        if self.status == "EXPIRED":
            out["expiryReason"] = "INSUFFICIENT_LIQUIDITY"
        if kind == "FULL":
            out["fills"] = [{"price": d8(t.price), "qty": d8(t.qty), "commission": d8(t.commission),
                             "commissionAsset": t.commission_asset, "tradeId": t.id} for t in self.trades]
        out["selfTradePreventionMode"] = "NONE"
        return out


class Engine:
    """`fake.orders`: orders, trades, prices, liquidity and the order faults."""

    def __init__(self, fake: FakeBinance):
        self.fake = fake
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.prices: dict[str, Decimal] = {}
        self.liquidity: dict[str, Decimal] = {}
        self.fills_per_order = 1
        self.fail_after_placing_left: list[tuple[int, int]] = []   # (status, code) per next order
        self._order_ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)
        self._events = itertools.count(1)
        self._matcher: asyncio.Task[None] | None = None

    # ---- test API -------------------------------------------------------------------------------
    def set_price(self, symbol: str, price: str | Decimal | None) -> None:
        if price is None:
            self.prices.pop(symbol, None)
        else:
            self.prices[symbol] = Decimal(str(price))

    def set_liquidity(self, symbol: str, quantity: str | Decimal | None) -> None:
        if quantity is None:
            self.liquidity.pop(symbol, None)
        else:
            self.liquidity[symbol] = Decimal(str(quantity))

    def fail_after_placing(self, n: int = 1, status: int = 500, code: int = -1000) -> None:
        """The next n orders ARE placed, then answered with `status` (5xx: status unknown)."""
        self.fail_after_placing_left += [(status, code)] * n

    def place_by_hand(self, symbol: str, side: str, type: str = "MARKET", quantity: str = "0",
                      price: str | None = None) -> None:
        """An order the client did not send (placed on the website): events go out as for any other."""
        params = {"symbol": symbol, "side": side, "type": type, "quantity": quantity,
                  "newClientOrderId": f"web_{next(self._events)}"}
        if price is not None:
            params.update(price=price, timeInForce="GTC")
        self.fake._call_in_loop(lambda: self.place(get_account(self.fake), params, by_hand=True))

    # ---- prices ---------------------------------------------------------------------------------
    def reference_price(self, symbol: str) -> Decimal:
        if symbol in self.prices:
            return self.prices[symbol]
        candidates = [s for (sym, _), s in self.fake.state.get("series", {}).items() if sym == symbol]
        now = self.fake.server_time_ms()
        for series in sorted(candidates, key=lambda s: s.step):
            times = series.open_times(None, now, 1, now)
            if len(times):
                return Decimal(series.rows(times, now)[0][4])
        raise ApiError(400, -2010, "Market is closed.")

    # ---- orders ---------------------------------------------------------------------------------
    def place(self, account: Account, params: dict[str, str], by_hand: bool = False) -> Order:
        from tests.fakes.binance.order_checks import check_new_order

        self.ensure_matcher()
        symbol = params.get("symbol", "")
        if symbol not in known_symbols(self.fake):
            raise ApiError(400, -1121, "Invalid symbol.")
        info = symbol_info(self.fake, symbol)
        ref = self.reference_price(symbol)
        tick = Decimal(next((f["tickSize"] for f in info["filters"] if f["filterType"] == "PRICE_FILTER"), "0"))
        if tick > 0:  # fills happen on the price grid
            ref = (ref / tick).to_integral_value() * tick
        side, kind, qty, price, quote_qty = check_new_order(params, info, ref)
        client_id = params.get("newClientOrderId") or f"fake{next(self._events):018d}"
        if any(o.client_order_id == client_id and o.status in OPEN for o in self.orders.values()):
            raise ApiError(400, -2010, "Duplicate order sent.")
        base, quote = info["baseAsset"], info["quoteAsset"]
        need_quote = (quote_qty or qty * (price if kind == "LIMIT" else ref)) if side == "BUY" else ZERO
        if (side == "BUY" and account.free(quote) < need_quote) or (side == "SELL" and account.free(base) < qty):
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
        now = self.fake.server_time_ms()
        order = Order(symbol, next(self._order_ids), client_id, side, kind, params.get("timeInForce", "GTC"),
                      price if kind == "LIMIT" else ZERO, qty, quote_qty or ZERO, now, base, quote, by_hand=by_hand)
        self.orders[order.order_id] = order
        self.emit_report(order, "NEW")
        if kind == "MARKET":
            self._fill_market(account, order, ref)
        else:
            if side == "BUY":
                account.move(quote, -qty * price, qty * price)
            else:
                account.move(base, -qty, qty)
            self.emit_position(account, (base, quote))
            self.match(account)
        return order

    def _fill_market(self, account: Account, order: Order, ref: Decimal) -> None:
        available = self.liquidity.get(order.symbol)
        take = order.orig_qty if available is None else min(order.orig_qty, available)
        parts = max(1, self.fills_per_order)
        step = (take / parts).quantize(Decimal("0.00000001"), ROUND_DOWN)
        pieces = [step] * (parts - 1) + [take - step * (parts - 1)]
        for piece in (p for p in pieces if p > 0):
            self._trade(account, order, ref, piece, maker=False)
        if order.executed < order.orig_qty:
            order.status = "EXPIRED"
            order.update_time = self.fake.server_time_ms()
            self.emit_report(order, "EXPIRED")
        self.emit_position(account, (order.base, order.quote, account.commission_asset))

    def _trade(self, account: Account, order: Order, price: Decimal, qty: Decimal, maker: bool) -> None:
        notional = price * qty
        if account.commission_asset:
            fee_asset = account.commission_asset
            fee = (notional * account.commission_rate / account.commission_asset_price).quantize(Decimal("1e-8"))
        else:
            fee_asset = order.base if order.side == "BUY" else order.quote
            fee = ((qty if order.side == "BUY" else notional) * account.commission_rate).quantize(Decimal("1e-8"))
        resting = order.type == "LIMIT"
        if order.side == "BUY":
            if resting:
                account.move(order.quote, free=(order.price - price) * qty, locked=-order.price * qty)
            else:
                account.move(order.quote, free=-notional)
            account.move(order.base, free=qty)
        else:
            account.move(order.base, free=ZERO if resting else -qty, locked=-qty if resting else ZERO)
            account.move(order.quote, free=notional)
        account.move(fee_asset, free=-fee)
        now = self.fake.server_time_ms()
        trade = Trade(next(self._trade_ids), order.order_id, order.symbol, price, qty, fee, fee_asset, now,
                      order.side == "BUY", maker)
        self.trades.append(trade)
        order.trades.append(trade)
        order.executed += qty
        order.cum_quote += notional
        order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now
        account.update_time = now
        self.emit_report(order, "TRADE", trade)

    def match(self, account: Account) -> None:
        """Fill resting LIMIT orders the reference price has crossed."""
        for order in [o for o in self.orders.values() if o.type == "LIMIT" and o.status in OPEN]:
            try:
                ref = self.reference_price(order.symbol)
            except ApiError:
                continue
            if (order.side == "BUY" and ref <= order.price) or (order.side == "SELL" and ref >= order.price):
                self._trade(account, order, order.price, order.orig_qty - order.executed, maker=True)
                self.emit_position(account, (order.base, order.quote, account.commission_asset))

    def cancel(self, account: Account, order: Order, cancel_client_id: str) -> None:
        left = order.orig_qty - order.executed
        if order.side == "BUY":
            account.move(order.quote, free=left * order.price, locked=-left * order.price)
        else:
            account.move(order.base, free=left, locked=-left)
        order.status = "CANCELED"
        order.update_time = self.fake.server_time_ms()
        self.emit_report(order, "CANCELED", cancel_client_id=cancel_client_id)
        self.emit_position(account, (order.base, order.quote))

    def ensure_matcher(self) -> None:
        if self._matcher is None or self._matcher.done():
            self._matcher = asyncio.ensure_future(self._match_loop())
            self.fake.on_stop.append(self._stop_matcher)

    async def _match_loop(self) -> None:
        while True:  # ends with the fake (on_stop cancels it)
            await asyncio.sleep(MATCH_EVERY_S)
            with contextlib.suppress(ApiError):
                self.match(get_account(self.fake))

    async def _stop_matcher(self) -> None:
        if self._matcher is not None:
            self._matcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._matcher

    # ---- user events ----------------------------------------------------------------------------
    def emit_report(self, order: Order, execution: str, trade: Trade | None = None,
                    cancel_client_id: str | None = None) -> None:
        now = self.fake.server_time_ms()
        event = {"e": "executionReport", "E": now, "s": order.symbol, "c": cancel_client_id or order.client_order_id,
                 "S": order.side, "o": order.type, "f": order.time_in_force, "q": d8(order.orig_qty),
                 "p": d8(order.price), "P": d8(ZERO), "F": d8(ZERO), "g": -1,
                 "C": order.client_order_id if cancel_client_id else "", "x": execution, "X": order.status,
                 "r": "NONE", "i": order.order_id, "l": d8(trade.qty if trade else ZERO), "z": d8(order.executed),
                 "L": d8(trade.price if trade else ZERO), "n": d8(trade.commission) if trade else "0",
                 "N": trade.commission_asset if trade else None, "T": trade.time if trade else now,
                 "t": trade.id if trade else -1, "I": next(self._events), "w": order.status == "NEW",
                 "m": bool(trade and trade.is_maker), "M": False, "O": order.time, "Z": d8(order.cum_quote),
                 "Y": d8(trade.price * trade.qty if trade else ZERO), "Q": d8(order.orig_quote_qty),
                 "W": order.time, "V": "NONE"}
        if execution == "EXPIRED":
            event["eR"] = "INSUFFICIENT_LIQUIDITY"
        self.fake.ws_api.broadcast(event)

    def emit_position(self, account: Account, assets: tuple[str | None, ...]) -> None:
        now = self.fake.server_time_ms()
        rows = [{"a": a, "f": d8(account.balances[a][0]), "l": d8(account.balances[a][1])}
                for a in dict.fromkeys(assets) if a and a in account.balances]
        self.fake.ws_api.broadcast({"e": "outboundAccountPosition", "E": now, "u": account.update_time or now,
                                    "B": rows})
