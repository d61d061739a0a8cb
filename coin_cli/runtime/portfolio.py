"""Portfolio: cash, position and the running totals of one symbol's account.

Balances change only through `ExecutionModel.apply` (the one execution arithmetic shared with
TradingEnv); this class adds the bookkeeping around it: marks, fees, trades, turnover, the
average entry price shown in the positions table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coin_cli.env.execution import ExecutionModel, Fill
    from coin_cli.runtime.state import Checkpoint


class Portfolio:
    __slots__ = ("_apply", "avg_price", "cash", "fees", "initial_cash", "price", "qty", "trades", "turnover")

    def __init__(self, execution: ExecutionModel, initial_cash: float) -> None:
        self._apply = execution.apply
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.qty = 0.0
        self.price = 0.0          # last mark (a close)
        self.avg_price = 0.0
        self.fees = 0.0
        self.trades = 0
        self.turnover = 0.0

    @property
    def equity(self) -> float:
        return self.cash + self.qty * self.price

    @property
    def weight(self) -> float:
        equity = self.cash + self.qty * self.price
        return self.qty * self.price / equity if equity > 0.0 else 0.0

    def equity_at(self, price: float) -> float:
        return self.cash + self.qty * price

    def apply(self, fill: Fill) -> None:
        before = self.qty
        self.cash, self.qty = self._apply(fill, self.cash, self.qty)
        self.fees += fill.fee
        self.trades += 1
        self.turnover += fill.notional
        # Average entry of the open position (display only): grows on adds, kept on reductions.
        if self.qty == 0.0:
            self.avg_price = 0.0
        elif before == 0.0 or (before > 0.0) != (self.qty > 0.0):
            self.avg_price = fill.price
        elif abs(self.qty) > abs(before):
            self.avg_price = (abs(before) * self.avg_price + abs(fill.qty) * fill.price) / abs(self.qty)

    def apply_execution(self, qty: float, price: float, commission: float, commission_asset: str,
                        assets: tuple[str, str]) -> tuple[float, float]:
        """One trade reported by a venue (signed base `qty` at `price`): the commission is taken from
        the asset it was charged in (quote: cash; base: the position). A third asset (BNB) leaves both
        alone and is not counted in `fees` (the ledger keeps it as charged). Returns (notional, fee in
        quote)."""
        base, quote = assets
        before = self.qty
        notional = abs(qty) * price
        self.cash -= qty * price
        self.qty += qty
        fee = 0.0
        if commission_asset == quote:
            self.cash -= commission
            fee = commission
        elif commission_asset == base:
            self.qty -= commission
            fee = commission * price
        self.fees += fee
        self.trades += 1
        self.turnover += notional
        if self.qty == 0.0 or abs(self.qty) < 1e-12:
            self.avg_price = 0.0
        elif before == 0.0 or (before > 0.0) != (self.qty > 0.0):
            self.avg_price = price
        elif abs(self.qty) > abs(before):
            self.avg_price = (abs(before) * self.avg_price + abs(qty) * price) / abs(self.qty)
        return notional, fee

    def restore(self, cp: Checkpoint) -> None:
        self.cash, self.qty, self.avg_price = cp.cash, cp.qty, cp.avg_price
        self.price = cp.last_close or 0.0
        self.fees, self.trades, self.turnover = cp.fees, cp.trades, cp.turnover

    def snapshot(self, cp: Checkpoint) -> None:
        cp.cash, cp.qty, cp.avg_price, cp.last_close = self.cash, self.qty, self.avg_price, self.price or None
        cp.fees, cp.trades, cp.turnover = self.fees, self.trades, self.turnover
