"""What a venue says about our orders, as events on the runtime's queue, and how the ledger books them.

`OrderUpdate` is one answer about one order (the REST answer to its placement, a query, a user
stream executionReport, a reconciliation), carrying Binance's status, the cumulative filled
quantity and the trades (`Execution`) it knows. `apply_order_update` books it in the bar loop's
thread: every trade not yet in the ledger (key: order, trade id) moves cash and position, the
order's status only moves forward, and the whole update is ONE transaction. The same trade
reported twice (REST answer and stream, or a re-sync after a reconnect) is booked once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coin_cli.runtime.ledger_schema import FINAL_STATUSES

if TYPE_CHECKING:
    from coin_cli.runtime.build import Runtime

# A status never moves back (a NEW executionReport arriving after the FILLED REST answer).
_RANK = {"INTENT": 0, "UNKNOWN": 1, "PENDING_NEW": 2, "NEW": 2, "PARTIALLY_FILLED": 3}


@dataclass(frozen=True, slots=True)
class Execution:
    """One trade of an order: signed base quantity (+ buy), price, the commission as charged."""

    trade_id: int
    qty: float
    price: float
    commission: float
    commission_asset: str
    time_ms: int = 0


@dataclass(slots=True)
class OrderUpdate:
    client_order_id: str
    status: str
    exchange_order_id: int | None = None
    filled_qty: float | None = None          # cumulative, unsigned
    executions: tuple[Execution, ...] = ()
    detail: str | None = None
    source: str = "rest"                     # rest | stream | query | reconcile
    sent_ns: int = 0                         # perf_counter_ns when its request left (latency figures)


@dataclass(slots=True)
class ReconcileReport:
    """What a reconciliation fetched (balances, our orders' outcomes, what the ledger does not know)."""

    reason: str
    updates: list[OrderUpdate] = field(default_factory=list)
    balances: dict[str, tuple[float, float]] | None = None
    foreign_orders: list[dict[str, Any]] = field(default_factory=list)
    foreign_trades: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _sign(side: str) -> float:
    return 1.0 if side == "BUY" else -1.0


def from_order_answer(answer: dict[str, Any], source: str = "rest") -> OrderUpdate:
    """POST /order (FULL) or GET /order answer; `fills[]` are its trades (GET /order has none)."""
    sign = _sign(answer.get("side", "BUY"))
    executions = tuple(Execution(int(f["tradeId"]), sign * float(f["qty"]), float(f["price"]), float(f["commission"]),
                                 str(f["commissionAsset"]), int(answer.get("transactTime") or 0))
                       for f in answer.get("fills") or [])
    return OrderUpdate(str(answer["clientOrderId"]), str(answer["status"]), int(answer["orderId"]),
                       float(answer.get("executedQty") or 0.0), executions,
                       answer.get("expiryReason"), source)


def from_trades(trades: list[dict[str, Any]]) -> tuple[Execution, ...]:
    """GET /myTrades rows -> Executions (isBuyer gives the side)."""
    return tuple(Execution(int(t["id"]), (1.0 if t["isBuyer"] else -1.0) * float(t["qty"]), float(t["price"]),
                           float(t["commission"]), str(t["commissionAsset"]), int(t.get("time") or 0))
                 for t in trades)


def from_execution_report(event: dict[str, Any]) -> OrderUpdate:
    """A user stream executionReport. A cancel's own id is `c`; the order's is then `C`."""
    cid = event.get("C") or event.get("c") if event.get("x") == "CANCELED" else event.get("c")
    executions: tuple[Execution, ...] = ()
    if event.get("x") == "TRADE" and int(event.get("t", -1)) >= 0:
        executions = (Execution(int(event["t"]), _sign(event["S"]) * float(event["l"]), float(event["L"]),
                                float(event.get("n") or 0.0), str(event.get("N") or ""), int(event.get("T") or 0)),)
    return OrderUpdate(str(cid), str(event["X"]), int(event["i"]), float(event.get("z") or 0.0), executions,
                       event.get("eR") or (event.get("r") if event.get("r") not in (None, "NONE") else None), "stream")


def status_after(current: str, new: str) -> str:
    if current in FINAL_STATUSES:
        return current
    if new in FINAL_STATUSES:
        return new
    return new if _RANK.get(new, 0) >= _RANK.get(current, 0) else current


def apply_order_update(rt: Runtime, update: OrderUpdate) -> dict[str, Any] | None:
    """Book `update` (see the module doc); returns the ledger's order row, None when it is not ours."""
    state = rt.parts.state
    order = state.order(update.client_order_id)
    if order is None and update.exchange_order_id is not None:
        order = state.order_by_exchange_id(update.exchange_order_id)
    if order is None:
        return None
    pf, assets = rt.parts.portfolio, rt.assets
    booked = False
    for ex in update.executions:
        if state.has_trade(order["seq"], ex.trade_id):
            continue
        notional, fee = pf.apply_execution(ex.qty, ex.price, ex.commission, ex.commission_asset, assets)
        rt.parts.risk.on_fill(notional, order["exec_bar"])
        state.record_fill(order["seq"], order["exec_bar"], ex.qty, ex.price, notional, fee, pf.cash, pf.qty,
                          trade_id=ex.trade_id, fee_asset=ex.commission_asset, commission=ex.commission)
        booked = True
    status = status_after(order["status"], update.status)
    filled = max(order["filled_qty"] or 0.0, update.filled_qty or 0.0)
    if booked or status != order["status"] or filled != order["filled_qty"] or update.exchange_order_id:
        state.set_order_status(order["client_order_id"], status, exchange_order_id=update.exchange_order_id,
                               filled_qty=filled, detail=update.detail)
        rt.commit()
    order["status"], order["filled_qty"] = status, filled
    return order
