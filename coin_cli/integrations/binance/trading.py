"""Signed REST for one account: orders, their queries, trades, balances (python-binance underneath).

The rule for an order differs from market data's retry policy (rest.py), because a request that
may have reached the matching engine must never be sent twice:
- `-1021` (timestamp outside recvWindow) is refused BEFORE matching: re-sync the clock offset from
  GET /time and send the same request once more;
- HTTP 429/418 are refused before matching too: `RateLimited` with the server's Retry-After, the
  caller decides whether the decision is still worth sending;
- a 5xx, `-1006`/`-1007` (backend timeout), a timeout or a dropped connection: the order may exist.
  `OutcomeUnknown`: the caller queries it by client order id, never re-sends it;
- any other error code (-2010 insufficient balance or duplicate, -1013 filter failure, ...):
  `OrderRefused(code, message)`, no retry.
Reads (order query, myTrades, account, openOrders) go through BinanceRESTClient's policy (pacing on
the shared WeightBudget, 429/418 waits, 5xx backoff), with the same -1021 re-sync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from coin_cli.errors import ExchangeError

if TYPE_CHECKING:
    from coin_cli.integrations.binance.rest import BinanceRESTClient

log = logging.getLogger("coin.binance.trading")

T = TypeVar("T")
WEIGHTS = {"order": 1, "order_query": 4, "my_trades_order": 5, "my_trades": 20, "account": 20, "open_orders": 6}
UNKNOWN_CODES = (-1006, -1007)   # "execution status unknown" (binance.md §1)
CLOCK_CODE = -1021
NOT_FOUND_CODE = -2013
KEY_CODES = {-2014: "API-key format invalid", -2015: "API key refused (invalid, IP or permissions)",
             -1022: "signature not valid: BINANCE_API_SECRET does not belong to the key"}


class TradingError(Exception):
    """Base of the order outcomes below (never an exit by itself: the broker turns them into states)."""


class OrderRefused(TradingError):
    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{message} (code {code})" if code is not None else message)
        self.code, self.message = code, message


class OutcomeUnknown(TradingError):
    """The request may have been executed: query it, never send it again."""


class RateLimited(TradingError):
    def __init__(self, status: int, wait_s: float | None) -> None:
        super().__init__(f"HTTP {status}: rate limited" + (f", Retry-After {wait_s:g} s" if wait_s is not None else ""))
        self.status, self.wait_s = status, wait_s


class BinanceTradingClient:
    """The account side of Binance Spot REST, on a connected BinanceRESTClient built with keys."""

    def __init__(self, rest: BinanceRESTClient, recv_window: int = 5000) -> None:
        self.rest = rest
        self.recv_window = recv_window
        self.clock_resyncs = 0
        self.placed = 0

    @property
    def client(self) -> Any:
        return self.rest.client

    async def resync_clock(self) -> int:
        """GET /time; python-binance signs with `timestamp_offset`, so both offsets move together."""
        server = await self.rest.server_time()
        self.client.timestamp_offset = server - int(time.time() * 1000)
        self.clock_resyncs += 1
        log.warning("clock re-synced with the server: offset %+d ms", self.client.timestamp_offset)
        return server

    # ---- orders ---------------------------------------------------------------------------------
    async def place_market(self, symbol: str, side: str, quantity: str, client_order_id: str) -> dict[str, Any]:
        """POST /api/v3/order MARKET with newOrderRespType FULL; see the module doc for what it raises."""
        from binance.exceptions import BinanceAPIException

        from coin_cli.integrations.binance.rest import _retry_after

        await self.rest.budget.reserve(WEIGHTS["order"], self.rest.server_now_ms, self.rest.stats)
        params = {"symbol": symbol, "side": side, "type": "MARKET", "quantity": quantity,
                  "newClientOrderId": client_order_id, "newOrderRespType": "FULL", "recvWindow": self.recv_window}
        for attempt in (0, 1):
            try:
                answer = await self.client.create_order(**params)
                self.placed += 1
                return answer
            except BinanceAPIException as exc:
                status = int(exc.status_code)
                if exc.code == CLOCK_CODE and attempt == 0:
                    await self.resync_clock()
                    continue
                if status in (429, 418):
                    raise RateLimited(status, _retry_after(exc.response)) from None
                if status >= 500 or exc.code in UNKNOWN_CODES:
                    raise OutcomeUnknown(f"HTTP {status} (code {exc.code}): {exc.message}") from None
                raise OrderRefused(exc.code, exc.message) from None
            except Exception as exc:  # timeout, connection reset, a malformed answer: it may have executed
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        raise OutcomeUnknown("clock still out of the recvWindow after a re-sync")

    async def query_order(self, symbol: str, client_order_id: str | None = None,
                          order_id: int | None = None) -> dict[str, Any] | None:
        """GET /api/v3/order by origClientOrderId (or orderId); None when it does not exist (-2013)."""
        ident = {"origClientOrderId": client_order_id} if order_id is None else {"orderId": order_id}
        return await self._read("order query", WEIGHTS["order_query"], self.client.get_order, not_found_ok=True,
                                symbol=symbol, **ident)

    async def my_trades(self, symbol: str, *, order_id: int | None = None, from_id: int | None = None,
                        limit: int = 1000) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades for one order, or every trade with id >= from_id (paged to the end)."""
        if order_id is not None:
            return await self._read("myTrades", WEIGHTS["my_trades_order"], self.client.get_my_trades,
                                    symbol=symbol, orderId=order_id) or []
        out: list[dict[str, Any]] = []
        cursor = from_id
        while True:
            params: dict[str, Any] = {"symbol": symbol, "limit": limit}
            if cursor is not None:
                params["fromId"] = cursor
            page = await self._read("myTrades", WEIGHTS["my_trades"], self.client.get_my_trades, **params) or []
            out.extend(page)
            if len(page) < limit or cursor is None:
                return out
            cursor = int(page[-1]["id"]) + 1

    async def account(self) -> dict[str, Any]:
        return await self._read("account", WEIGHTS["account"], self.client.get_account) or {}

    async def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return await self._read("openOrders", WEIGHTS["open_orders"], self.client.get_open_orders, symbol=symbol) or []

    async def _read(self, what: str, weight: int, method: Callable[..., Awaitable[T]], *,
                    not_found_ok: bool = False, **params: Any) -> T | None:
        from binance.exceptions import BinanceAPIException

        async def call() -> T | None:
            for attempt in (0, 1):
                try:
                    return await method(recvWindow=self.recv_window, **params)
                except BinanceAPIException as exc:
                    if exc.code == CLOCK_CODE and attempt == 0:
                        await self.resync_clock()
                        continue
                    if exc.code == NOT_FOUND_CODE and not_found_ok:
                        return None
                    if exc.code in KEY_CODES:  # the keys are configuration: exit 2, not an outage
                        from coin_cli.errors import UsageError

                        raise UsageError(f"{self.rest.api_url}: {what}: Binance says {KEY_CODES[exc.code]} "
                                         f"(code {exc.code}): check BINANCE_API_KEY / BINANCE_API_SECRET") from None
                    raise
            raise ExchangeError(f"{self.rest.api_url}: {what}: clock still outside the recvWindow after a re-sync")

        return await self.rest._call(what, weight, call)


def balances(account: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """GET /account's balances as {asset: (free, locked)} (the strings parsed)."""
    return {b["asset"]: (float(b["free"]), float(b["locked"])) for b in account.get("balances") or []}

