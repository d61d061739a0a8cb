"""Live mode's account side: the signed REST session, the user data stream, reconciliation.

`LiveSession.start(rt, queue)` runs once in the runtime's event loop before the first bar:
connect signed REST (the clock offset measured), subscribe the user data stream (its events go on
the runtime's queue, so they are booked in order with the candles, in the loop's one thread),
then reconcile. A reconciliation is a task that fetches, and a `ReconcileReport` the loop books:
1. every order the ledger holds as not final (INTENT, UNKNOWN, NEW, PARTIALLY_FILLED) is queried
   by client order id with its trades - never re-sent;
2. trades since the last trade the ledger knows (GET /myTrades fromId): ours that the ledger lacks
   are booked (missed while the stream was down), trades of orders coin did not place are reported;
3. open orders coin did not place are reported, never adopted;
4. balances: the exchange's base and quote totals against the ledger's, from the baseline taken
   when the ledger started (deposits and withdrawals, `balanceUpdate`, move the baseline). A
   difference is a RECONCILE_MISMATCH alert with the numbers; beyond `risk.reconcile_tolerance`
   of equity the runtime goes HALTED, without flattening: nothing is sent until a person looks.
It runs at start and after every user-stream re-subscription (`resync` marker).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from coin_cli.aio import bounded
from coin_cli.integrations.binance.user_ws import UserStreamEvent
from coin_cli.runtime.events import StreamStatus
from coin_cli.runtime.executions import (
    OrderUpdate,
    ReconcileReport,
    apply_order_update,
    from_execution_report,
)

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runtime.brokers.binance import BinanceBroker
    from coin_cli.runtime.build import Runtime

log = logging.getLogger("coin.runtime.live")

BASELINE_KEY = "live_baseline"
MISMATCH_EPS = 1e-6        # relative to equity: below this a difference is rounding (8-decimal strings)
RECONCILE_HALT = "reconcile"


class LiveSession:
    def __init__(self, settings: Settings, broker: BinanceBroker, keys: tuple[str, str], budget: Any,
                 assets: tuple[str, str]) -> None:
        self.settings = settings
        self.broker = broker
        self.keys = keys
        self.budget = budget
        self.base, self.quote = assets
        self.tolerance = settings.risk.reconcile_tolerance
        self.rest: Any = None
        self.trading: Any = None
        self.user_ws: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reconciles = 0
        self.reconcile_wanted: str | None = None
        self.last_report: ReconcileReport | None = None
        self.mismatches: list[str] = []

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self, rt: Runtime, queue: asyncio.Queue[Any]) -> None:
        from coin_cli.integrations.binance.trading import BinanceTradingClient
        from coin_cli.integrations.binance.user_ws import BinanceUserWS
        from coin_cli.runtime.live_build import rest_with_keys

        b = self.settings.binance
        self.rest = await rest_with_keys(self.settings, self.keys, self.budget).connect()
        self.trading = BinanceTradingClient(self.rest, b.recv_window)
        self.broker.attach(self.trading, queue)
        # the stream first: what happens from now on is on the queue, the fetch below covers before
        self.user_ws = BinanceUserWS.from_settings(b, *self.keys)
        own: asyncio.Queue[Any] = asyncio.Queue()
        self._spawn(self.user_ws.run(own))
        self._spawn(self._forward(own, queue))
        await self._wait_subscribed()
        unfinished = [o["client_order_id"] for o in rt.parts.state.open_orders()]
        self.broker.open.update(unfinished)   # nothing new is sent while one of them is unresolved
        report = await self.fetch(rt, "start")
        self.apply_report(rt, report)
        for cid in unfinished:   # a query that failed at start goes on in the background
            if cid in self.broker.open:
                self.broker.resolve(cid)

    async def _wait_subscribed(self) -> None:
        from coin_cli.errors import ExchangeError

        ws = self.user_ws
        deadline = asyncio.get_running_loop().time() + self.settings.binance.timeout * 2
        while ws.subscriptions < 1:
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if asyncio.get_running_loop().time() > deadline:
                raise ExchangeError(f"no user data stream subscription at {ws.endpoint} in time")
            await asyncio.sleep(0.02)

    async def _forward(self, own: asyncio.Queue[Any], queue: asyncio.Queue[Any]) -> None:
        """The user stream's events onto the runtime's queue; its up/down become markers of their own
        (the market stream's health is the kline socket's)."""
        while True:
            event = await own.get()
            if isinstance(event, StreamStatus):
                event = UserStreamEvent("stream_up" if event.up else "stream_down", {"detail": event.detail})
            await queue.put(event)

    async def drain(self, rt: Runtime, queue: asyncio.Queue[Any], timeout: float | None = None) -> None:
        """At a stop: book the answers to orders still in flight (candles meanwhile are left to the
        next start's gap fill). An order still unresolved after `timeout` (3 x binance.timeout) stays
        open in the ledger and is queried at the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (3 * self.settings.binance.timeout if timeout is None else timeout)
        while self.broker.busy and loop.time() < deadline:
            try:
                event = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
            self.handle(rt, event)
        if self.broker.busy:
            log.warning("stopping with order(s) %s unresolved: the next start queries them",
                        ", ".join(sorted(self.broker.open)))
        rt.commit()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def aclose(self) -> None:
        await self.broker.aclose()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=3.0)
        if self.user_ws is not None:
            await bounded(self.user_ws.close(), 3.0)
        if self.rest is not None:
            await self.rest.close()

    def stats(self) -> dict[str, Any]:
        broker, trading = self.broker, self.trading
        return {"orders_sent": broker.submitted, "orders_unknown": broker.unknown,
                "orders_open": sorted(broker.open), "reconciles": self.reconciles,
                "user_stream_subscriptions": self.user_ws.subscriptions if self.user_ws is not None else 0,
                "clock_resyncs": trading.clock_resyncs if trading is not None else 0}

    # ---- events the loop hands over ----------------------------------------------------------------
    def handle(self, rt: Runtime, event: Any) -> None:
        kind = type(event)
        if kind is OrderUpdate:
            self.on_order_update(rt, event)
        elif kind is UserStreamEvent:
            self.on_user_event(rt, event)
        elif kind is ReconcileReport:
            self.apply_report(rt, event)

    def on_order_update(self, rt: Runtime, update: OrderUpdate) -> None:
        order = apply_order_update(rt, update)
        if order is None:
            self._mismatch(rt, f"{update.source} report for order {update.client_order_id} "
                               f"(id {update.exchange_order_id}) that coin did not place; not adopted", 0.0)
            return
        status = order["status"]
        self.broker.settled(update, status)
        if update.status == "REJECTED" and status == "REJECTED":
            rt.counters.rejected += 1
            rt.parts.alerts.order_rejected(update.client_order_id, update.detail or "rejected")
        if update.sent_ns:
            rt.parts.metrics.record({"order": update.client_order_id, "status": status, "source": update.source})
        if self.reconcile_wanted and not self.broker.busy:
            self.request_reconcile(rt, self.reconcile_wanted)

    def on_user_event(self, rt: Runtime, event: UserStreamEvent) -> None:
        kind = event.event_type
        if kind == "executionReport":
            self.on_order_update(rt, from_execution_report(event.payload))
        elif kind == "balanceUpdate":  # deposit, withdrawal, transfer: not a trade, moves the baseline
            asset, delta = str(event.payload.get("a")), float(event.payload.get("d") or 0.0)
            if asset in (self.base, self.quote):
                baseline = self.baseline(rt) or {}
                baseline[asset] = baseline.get(asset, 0.0) + delta
                rt.parts.state.set_meta(BASELINE_KEY, json.dumps(baseline))
        elif kind == "resync":
            self.request_reconcile(rt, f"user stream re-subscribed ({event.payload.get('reason')})")
        elif kind == "stream_down":
            rt.parts.alerts.stream_down(f"user data stream: {event.payload.get('detail')}")
        elif kind == "stream_up":
            rt.parts.alerts.stream_up()

    def request_reconcile(self, rt: Runtime, reason: str) -> None:
        if self.broker.busy:  # balances move while an order is in flight: after it settles
            self.reconcile_wanted = reason
            return
        self.reconcile_wanted = None
        queue = self.broker.queue
        assert queue is not None

        async def run() -> None:
            await queue.put(await self.fetch(rt, reason))

        self._spawn(run())

    # ---- reconciliation -------------------------------------------------------------------------
    async def fetch(self, rt: Runtime, reason: str) -> ReconcileReport:
        from coin_cli.errors import ExchangeError

        state, symbol = rt.parts.state, rt.symbol
        report = ReconcileReport(reason)
        try:
            for order in state.open_orders():
                update = await self.broker.query(order["client_order_id"], max_failures=3)
                if update is not None:
                    update.source = "reconcile"
                    report.updates.append(update)
            last = state.last_trade_id()
            resolved = {u.exchange_order_id for u in report.updates}   # their trades came with them
            if last is not None:
                for trade in await self.trading.my_trades(symbol, from_id=last + 1):
                    if int(trade["orderId"]) in resolved:
                        continue
                    if state.order_by_exchange_id(int(trade["orderId"])) is None:
                        report.foreign_trades.append(trade)
                    else:   # ours, missed (the stream was down): the order and all its trades
                        report.updates.append(await self._order_with_trades(trade))
                        resolved.add(int(trade["orderId"]))
            known = {o["client_order_id"] for o in state.orders()}
            report.foreign_orders = [o for o in await self.trading.open_orders(symbol)
                                     if o.get("clientOrderId") not in known]
            from coin_cli.integrations.binance.trading import balances

            report.balances = balances(await self.trading.account())
        except ExchangeError as exc:
            report.error = str(exc)
        return report

    async def _order_with_trades(self, trade: dict[str, Any]) -> OrderUpdate:
        from coin_cli.errors import ExchangeError
        from coin_cli.runtime.executions import from_order_answer, from_trades

        answer = await self.trading.query_order(trade["symbol"], order_id=int(trade["orderId"]))
        if answer is None:  # listed in myTrades, so it exists: a lagging query; the next reconcile retries
            raise ExchangeError(f"order {trade['orderId']} of trade {trade['id']} not found by query")
        update = from_order_answer(answer, source="reconcile")
        trades = await self.trading.my_trades(trade["symbol"], order_id=update.exchange_order_id)
        update.executions = from_trades(trades)
        return update

    def apply_report(self, rt: Runtime, report: ReconcileReport) -> None:
        self.reconciles += 1
        self.last_report = report
        if report.error is not None:
            self._mismatch(rt, f"reconciliation ({report.reason}) could not finish: {report.error}", 0.0)
            return
        for update in report.updates:
            self.on_order_update(rt, update)
        pf = rt.parts.portfolio
        equity = max(pf.equity_at(pf.price) if pf.price else pf.cash, 1e-12)
        for o in report.foreign_orders:
            notional = (float(o.get("origQty") or 0) * float(o.get("price") or 0)
                        or float(o.get("origQuoteOrderQty") or 0))
            self._mismatch(rt, f"open order {o.get('clientOrderId')} {o.get('side')} {o.get('origQty')} "
                               f"{o.get('type')} @ {o.get('price')} was not placed by coin (not adopted)",
                           notional / equity)
        for t in report.foreign_trades:
            side = "BUY" if t.get("isBuyer") else "SELL"
            self._mismatch(rt, f"trade {t.get('id')} of order {t.get('orderId')} ({side} {t.get('qty')} @ "
                               f"{t.get('price')}) was not placed by coin", 0.0)
        if report.balances is not None and not self.broker.busy:
            self._check_balances(rt, report.balances, equity)
        if not self.mismatches:
            rt.parts.alerts.reconciled()
        self.mismatches = []

    def baseline(self, rt: Runtime) -> dict[str, float] | None:
        raw = rt.parts.state.meta().get(BASELINE_KEY)
        return json.loads(raw) if raw else None

    def _check_balances(self, rt: Runtime, balances: dict[str, tuple[float, float]], equity: float) -> None:
        baseline = self.baseline(rt)
        if baseline is None:  # a new ledger: what the account holds besides it stays outside it
            baseline = self._baseline_now(rt, balances)
            rt.parts.state.set_meta(BASELINE_KEY, json.dumps(baseline))
        found = self.difference(rt, balances, baseline, equity)
        if found is not None:
            self._mismatch(rt, *found)

    def _baseline_now(self, rt: Runtime, balances: dict[str, tuple[float, float]]) -> dict[str, float]:
        pf = rt.parts.portfolio
        actual = {a: sum(balances.get(a, (0.0, 0.0))) for a in (self.base, self.quote)}
        return {self.base: actual[self.base] - pf.qty, self.quote: actual[self.quote] - (pf.cash - pf.initial_cash)}

    def difference(self, rt: Runtime, balances: dict[str, tuple[float, float]], baseline: dict[str, float],
                   equity: float) -> tuple[str, float] | None:
        """The exchange's totals against baseline + ledger: (what differs, its share of equity), or None."""
        pf = rt.parts.portfolio
        actual = {a: sum(balances.get(a, (0.0, 0.0))) for a in (self.base, self.quote)}
        expected = {self.base: baseline[self.base] + pf.qty,
                    self.quote: baseline[self.quote] + pf.cash - pf.initial_cash}
        d_base, d_quote = actual[self.base] - expected[self.base], actual[self.quote] - expected[self.quote]
        value = abs(d_base) * (pf.price or 0.0) + abs(d_quote)
        if value / equity <= MISMATCH_EPS:
            return None
        return (f"balances differ from the ledger: {self.base} exchange {actual[self.base]:.8f} vs ledger "
                f"{expected[self.base]:.8f} ({d_base:+.8f}), {self.quote} exchange {actual[self.quote]:.8f} vs ledger "
                f"{expected[self.quote]:.8f} ({d_quote:+.8f}); {value:,.2f} {self.quote} = {value / equity:.4%} of "
                "equity", value / equity)

    def describe(self, rt: Runtime, report: ReconcileReport) -> str:
        """What applying `report` would find, without booking it (coin trade --check)."""
        if report.error is not None:
            return f"could not finish: {report.error}"
        parts = [f"{len(report.updates)} open ledger order(s) resolved" if report.updates else "no open ledger orders"]
        if report.foreign_orders:
            parts.append(f"{len(report.foreign_orders)} open order(s) not placed by coin")
        if report.foreign_trades:
            parts.append(f"{len(report.foreign_trades)} trade(s) not placed by coin")
        pf = rt.parts.portfolio
        equity = max(pf.equity_at(pf.price) if pf.price else pf.cash, 1e-12)
        if report.balances is not None:
            baseline = self.baseline(rt) or self._baseline_now(rt, report.balances)
            found = self.difference(rt, report.balances, baseline, equity)
            parts.append(found[0] if found else "balances agree with the ledger")
        return "; ".join(parts)

    def _mismatch(self, rt: Runtime, detail: str, share: float) -> None:
        """One RECONCILE_MISMATCH alert; HALTED (no flatten) when `share` of equity passes the tolerance."""
        self.mismatches.append(detail)
        log.error("reconcile mismatch: %s", detail)
        rt.parts.alerts.reconcile_mismatch(detail)
        rt.parts.metrics.record({"reconcile_mismatch": detail})
        risk = rt.parts.risk
        if share > self.tolerance and risk.state != "HALTED":
            risk.halt(f"{RECONCILE_HALT}: {detail} (beyond risk.reconcile_tolerance {self.tolerance:.2%})",
                      rt.last_bar)
            rt.commit()
