"""BinanceBroker: MARKET orders on Binance Spot, placed from tasks so the bar loop never awaits them.

`submit(intent)` is called by the bar pipeline at the decision (bar t's close) with an intent that
is ALREADY committed to the ledger (write-ahead); it formats the quantity as a Decimal string on
the symbol's MARKET lot step and starts a task. The task's outcome comes back on the runtime's
queue as an `OrderUpdate` the loop books (executions.py):
- answered: the FULL answer (status FILLED, or EXPIRED after a partial fill, and its trades);
- refused (-2010 insufficient balance, -1013 filter, ...): REJECTED with the reason: an
  ORDER_REJECTED alert, no retry;
- 429/418: not placed; waits Retry-After and tries again while the decision is still fresh
  (`rate_limit_wait_cap`), else REJECTED saying so;
- unknown (5xx, -1007, timeout): UNKNOWN at once, then the order is QUERIED by its client id
  (never re-sent) until its outcome is known. "Does not exist" right after a timeout can be the
  exchange lagging (ft#4403), so only `not_found_attempts` such answers in a row make it REJECTED.
While any order of ours is not final, `busy` is True and the runtime sends nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from coin_cli.runtime.executions import OrderUpdate, from_order_answer, from_trades

if TYPE_CHECKING:
    from coin_cli.integrations.binance.filters import SymbolFilters
    from coin_cli.integrations.binance.trading import BinanceTradingClient
    from coin_cli.runtime.orders import OrderIntent

log = logging.getLogger("coin.runtime.binance")


class BinanceBroker:
    name = "binance"
    external = True       # intents committed before the request leaves
    at_decision = True    # sent at bar t's close, not at t+1's open

    def __init__(self, symbol: str, filters: SymbolFilters, *, rate_limit_wait_cap: float = 30.0,
                 query_backoff: float = 0.5, query_backoff_cap: float = 10.0, not_found_attempts: int = 4) -> None:
        self.symbol = symbol
        self.filters = filters
        self.rate_limit_wait_cap = rate_limit_wait_cap
        self.query_backoff, self.query_backoff_cap = query_backoff, query_backoff_cap
        self.not_found_attempts = not_found_attempts
        self.trading: BinanceTradingClient | None = None   # connected by the live session
        self.queue: asyncio.Queue[Any] | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}     # client id -> its placing or resolving task
        self.open: set[str] = set()                          # our orders not final yet
        self.sent_ns: dict[str, int] = {}                    # client id -> when its request left
        self.submitted = self.rejected = self.unknown = 0

    def attach(self, trading: BinanceTradingClient, queue: asyncio.Queue[Any]) -> None:
        self.trading, self.queue = trading, queue

    @property
    def busy(self) -> bool:
        return bool(self.open)

    def quantity(self, intent: OrderIntent) -> str:
        return self.filters.quantity_str(abs(intent.qty), market=True)

    def submit(self, intent: OrderIntent) -> None:
        """Start placing `intent` (committed already); the outcome arrives on the queue."""
        cid = intent.client_order_id
        self.open.add(cid)
        self.submitted += 1
        self._start(cid, self._place(cid, intent.side, self.quantity(intent)))

    def resolve(self, client_order_id: str) -> None:
        """Find out what became of an order whose answer was lost (restart, reconnect): query only."""
        if client_order_id in self.tasks:
            return
        self.open.add(client_order_id)
        self._start(client_order_id, self._resolve_and_put(client_order_id))

    def recover(self, intent: OrderIntent) -> None:
        self.resolve(intent.client_order_id)

    def settled(self, update: OrderUpdate, status: str) -> None:
        """The loop booked `update`; `status` is the order's status in the ledger now."""
        from coin_cli.runtime.ledger_schema import FINAL_STATUSES

        if status in FINAL_STATUSES:
            self.open.discard(update.client_order_id)

    def _start(self, cid: str, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks[cid] = task
        task.add_done_callback(lambda _t, cid=cid: self.tasks.pop(cid, None))

    def _put(self, update: OrderUpdate) -> None:
        assert self.queue is not None
        self.queue.put_nowait(update)

    async def _place(self, cid: str, side: str, quantity: str) -> None:
        from coin_cli.integrations.binance.trading import OrderRefused, OutcomeUnknown, RateLimited

        assert self.trading is not None
        deadline = time.monotonic() + self.rate_limit_wait_cap
        while True:
            self.sent_ns[cid] = time.perf_counter_ns()
            try:
                answer = await self.trading.place_market(self.symbol, side, quantity, cid)
            except RateLimited as exc:
                wait = exc.wait_s if exc.wait_s is not None else 1.0
                if time.monotonic() + wait > deadline:
                    self.rejected += 1
                    self._put(OrderUpdate(cid, "REJECTED", detail=f"not placed: {exc}; the decision went stale"))
                    return
                log.warning("order %s: %s; waiting", cid, exc)
                await asyncio.sleep(wait)
                continue
            except OrderRefused as exc:
                self.rejected += 1
                self._put(OrderUpdate(cid, "REJECTED", detail=str(exc)))
                return
            except OutcomeUnknown as exc:
                self.unknown += 1
                log.warning("order %s: outcome unknown (%s); querying it, never re-sending", cid, exc)
                self._put(OrderUpdate(cid, "UNKNOWN", detail=str(exc)))
                await self._resolve_and_put(cid)
                return
            update = from_order_answer(answer)
            update.sent_ns = self.sent_ns.get(cid, 0)
            self._put(update)
            return

    async def _resolve_and_put(self, cid: str) -> None:
        update = await self.query(cid)
        if update is not None:
            self._put(update)

    async def query(self, cid: str, max_failures: int | None = None) -> OrderUpdate | None:
        """The order by client id and, when it traded, its trades (GET /myTrades?orderId). Queries
        that fail are repeated with backoff; None after `max_failures` of them (None: forever)."""
        from coin_cli.errors import ExchangeError

        assert self.trading is not None
        missing = 0
        attempt = 0
        while max_failures is None or attempt < max_failures:
            try:
                answer = await self.trading.query_order(self.symbol, cid)
                if answer is None:
                    missing += 1
                    if missing >= self.not_found_attempts:
                        return OrderUpdate(cid, "REJECTED", source="query",
                                           detail=f"not on the exchange after {missing} queries: it was never placed")
                else:
                    update = from_order_answer(answer, source="query")
                    if update.filled_qty:
                        trades = await self.trading.my_trades(self.symbol, order_id=update.exchange_order_id)
                        update.executions = from_trades(trades)
                    return update
            except ExchangeError as exc:
                log.warning("order %s: query failed (%s); trying again", cid, exc)
            await asyncio.sleep(min(self.query_backoff_cap, self.query_backoff * 2 ** attempt))
            attempt += 1
        return None

    async def aclose(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=2.0)
