"""PaperBroker: fills market orders at the execution bar's open through the ExecutionModel
(slippage, tick, fee) — the same code TradingEnv uses — and refuses what a spot venue would."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coin_cli.runtime.brokers.base import OrderRejected

if TYPE_CHECKING:
    from coin_cli.env.execution import ExecutionModel, Fill
    from coin_cli.runtime.orders import OrderIntent
    from coin_cli.runtime.portfolio import Portfolio


class PaperBroker:
    name = "paper"

    def __init__(self, execution: ExecutionModel, portfolio: Portfolio, *, external: bool = False) -> None:
        self.execution = execution
        self.portfolio = portfolio       # the paper venue's balances are the runtime's own
        self.external = external         # True: behave like a venue (intents committed first)
        self.long_only = execution.params.long_only
        self._fill = execution.fill
        self._apply = execution.apply
        self.submitted = 0
        self.recovered = 0
        self.rejected = 0

    def submit(self, intent: OrderIntent) -> Fill:
        fill = self._execute(intent)
        self.submitted += 1
        return fill

    def recover(self, intent: OrderIntent) -> Fill:
        # The paper venue died with the process that crashed; the order was sized at the
        # execution bar's open, so its outcome is exactly what it would have been.
        self.recovered += 1
        return self._execute(intent)

    def _execute(self, intent: OrderIntent) -> Fill:
        fill = self._fill(intent.qty, intent.ref_price)
        cash, qty = self._apply(fill, self.portfolio.cash, self.portfolio.qty)
        # What a spot venue refuses: spending cash it does not hold, selling base it does not own.
        if cash < -1e-9 * max(1.0, self.portfolio.cash):
            self.rejected += 1
            raise OrderRejected(f"insufficient balance: needs {fill.notional + fill.fee:,.8f} quote, "
                                f"has {self.portfolio.cash:,.8f}")
        if self.long_only and qty < 0.0:
            self.rejected += 1
            raise OrderRejected(f"insufficient balance: sells {-intent.qty:g} base, holds {self.portfolio.qty:g}")
        return fill
