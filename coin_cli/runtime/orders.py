"""OrderManager: an approved target weight -> an order intent (signed base quantity after
exchange-filter rounding; nothing below the minimum notional), with a deterministic client order
id, so a retry or a restart can never double an order.

Sizing is the ExecutionModel's (`order_for_target`), the one place that knows the filters; the
risk manager's order caps are applied in between and the capped target is sized again.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from coin_cli.errors import UsageError

if TYPE_CHECKING:
    from coin_cli.runtime.risk import RiskManager

MAX_CLIENT_ID = 36                      # Binance newClientOrderId: ^[a-zA-Z0-9-_]{1,36}$
_ID_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
LEG_REBALANCE = 0
LEG_FLATTEN = 1


class OrderIntent:
    """One order the runtime means to place. `seq` orders the ledger; `ref_price` is the price it
    was sized at (the execution bar's open for the paper broker)."""

    __slots__ = (
        "client_order_id",
        "decision_bar",
        "exec_bar",
        "leg",
        "qty",
        "reason",
        "ref_price",
        "seq",
        "target",
    )

    def __init__(self, seq: int, client_order_id: str, decision_bar: int, exec_bar: int, leg: int, qty: float,
                 target: float, ref_price: float, reason: str) -> None:
        self.seq = seq
        self.client_order_id = client_order_id
        self.decision_bar = decision_bar
        self.exec_bar = exec_bar
        self.leg = leg
        self.qty = qty
        self.target = target
        self.ref_price = ref_price
        self.reason = reason

    @property
    def side(self) -> str:
        return "BUY" if self.qty > 0 else "SELL"

    def __repr__(self) -> str:
        return (f"OrderIntent({self.client_order_id} {self.side} {abs(self.qty)} @~{self.ref_price} "
                f"target {self.target})")


def check_strategy_id(strategy_id: str) -> str:
    if not _ID_CHARS.match(strategy_id):
        raise UsageError(f"trade.strategy_id {strategy_id!r}: use 1-16 letters, digits, '-' or '_' "
                         "(it starts every client order id)")
    return strategy_id


def client_order_id(strategy_id: str, symbol: str, bar_open_time: int, leg: int) -> str:
    """`<strategy>-<SYMBOL>-<bar open ms>-<leg>`, or, when that exceeds 36 characters, the strategy
    prefix with a digest of the same parts. Same inputs, same id — across processes and restarts."""
    plain = f"{strategy_id}-{symbol}-{bar_open_time}-{leg}"
    if len(plain) <= MAX_CLIENT_ID:
        return plain
    digest = hashlib.blake2b(plain.encode(), digest_size=12).hexdigest()  # 24 hex characters
    return f"{strategy_id[:MAX_CLIENT_ID - 25]}-{digest}"


class OrderManager:
    def __init__(self, strategy_id: str, symbol: str, execution: object, risk: RiskManager,
                 order_seq: int = 0) -> None:
        self.strategy_id = check_strategy_id(strategy_id)
        self.symbol = symbol
        self.execution = execution
        self.risk = risk
        self.order_seq = order_seq
        self._size = execution.order_for_target  # type: ignore[attr-defined]
        self.order_size = self._size   # sizing only: 0.0 means target_to_intent would answer None

    def client_order_id(self, bar_open_time: int, leg: int = LEG_REBALANCE) -> str:
        return client_order_id(self.strategy_id, self.symbol, bar_open_time, leg)

    def target_to_intent(self, target: float, cash: float, qty: float, price: float, decision_bar: int,
                         exec_bar: int, leg: int = LEG_REBALANCE, reason: str = "ok") -> OrderIntent | None:
        """Size an order that moves the position towards `target` at `price`; None when the
        rounded order is zero (already there, or below the minimum quantity / notional)."""
        order_qty = self._size(target, cash, qty, price)
        if order_qty == 0.0:
            return None
        equity = cash + qty * price
        current = qty * price / equity if equity > 0.0 else 0.0
        capped, cap_reason = self.risk.cap_order(target, current, abs(order_qty) * price, equity, exec_bar)
        if cap_reason != "ok":
            reason = cap_reason
            order_qty = self._size(capped, cash, qty, price)
            if order_qty == 0.0:
                return None
            target = capped
        self.order_seq += 1
        return OrderIntent(self.order_seq, self.client_order_id(decision_bar, leg), decision_bar, exec_bar, leg,
                           order_qty, target, price, reason)
