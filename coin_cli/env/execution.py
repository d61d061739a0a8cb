"""THE execution model: how a target weight becomes a fill, with its fee and slippage.

TradingEnv, the replay runtime and the paper broker all call this module, so a policy ends with
the same equity whichever of them runs it (DESIGN.md §4). Semantics:

- the target decided on bar t's close executes at bar t+1's OPEN, sized from the equity valued at
  that open (`cash + qty * open`);
- the order quantity is rounded DOWN (toward zero) to `lot_step`; a target of 0 sells the whole
  position (rounded to the step), so closing leaves no dust;
- the order is skipped (0.0) when its |quantity| < `min_qty` or its notional at the open <
  `min_notional`;
- the fill price moves against the trader by `slippage_bps` and lands on the tick in the adverse
  direction (buys round up, sells down);
- `fee_bps` of the fill notional is charged in the quote currency;
- long-only (Binance Spot): weights are clipped to [0, 1] and a buy is sized so that notional plus
  fee fits in the cash, so cash never goes negative. Otherwise weights are clipped to [-1, 1].

Pure Python floats; deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coin_cli.config import EnvConfig, Settings

_EPS = 1e-9  # tolerance in units of a step: 0.3 / 0.1 must count as 3 steps, not 2


@dataclass(frozen=True, slots=True)
class ExecutionParams:
    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    lot_step: float = 0.00001
    min_qty: float = 0.00001
    tick_size: float = 0.01
    min_notional: float = 5.0
    long_only: bool = True

    @classmethod
    def from_settings(cls, settings: Settings | EnvConfig) -> ExecutionParams:
        """From `settings.env` (a whole Settings or just its env section)."""
        env = getattr(settings, "env", settings)
        return cls(fee_bps=env.fee_bps, slippage_bps=env.slippage_bps, lot_step=env.lot_step,
                   min_qty=env.min_qty, tick_size=env.tick_size, min_notional=env.min_notional,
                   long_only=env.long_only)


@dataclass(frozen=True, slots=True)
class Fill:
    """One executed order: signed base quantity (+ buy, - sell), price incl. slippage, notional
    (|qty| * price) and fee, both in the quote currency."""

    qty: float
    price: float
    notional: float
    fee: float

    @property
    def side(self) -> str:
        return "BUY" if self.qty > 0 else "SELL"

    @property
    def cash_delta(self) -> float:
        """What the fill does to the quote balance."""
        return -self.qty * self.price - self.fee


class ExecutionModel:
    def __init__(self, params: ExecutionParams | None = None):
        self.params = p = params or ExecutionParams()
        self.fee_rate = p.fee_bps * 1e-4
        self.slip_rate = p.slippage_bps * 1e-4
        self.min_weight = 0.0 if p.long_only else -1.0
        self._step = p.lot_step
        self._step_dec = _decimals(p.lot_step)
        self._tick = p.tick_size
        self._tick_dec = _decimals(p.tick_size)
        self._dust = 0.5 * min(x for x in (p.lot_step, p.min_qty, 1e-12) if x > 0)

    def clip_weight(self, target_weight: float) -> float:
        if target_weight != target_weight:  # NaN stays NaN: order_for_target treats it as "hold"
            return target_weight
        return min(max(target_weight, self.min_weight), 1.0)

    def buy_price(self, open_price: float) -> float:
        return self._tick_round(open_price * (1.0 + self.slip_rate), up=True)

    def sell_price(self, open_price: float) -> float:
        return self._tick_round(open_price * (1.0 - self.slip_rate), up=False)

    def order_for_target(self, target_weight: float, cash: float, qty: float, price: float) -> float:
        """Signed, lot-rounded base quantity that moves the position toward `target_weight` at
        `price` (the next bar's open); 0.0 when there is nothing to do or the order is too small."""
        if target_weight != target_weight or price <= 0.0:
            return 0.0
        weight = min(max(target_weight, self.min_weight), 1.0)
        if weight == 0.0:
            delta = -qty
        else:
            equity = cash + qty * price
            if equity <= 0.0:
                return 0.0
            delta = weight * equity / price - qty
        delta = self._lot_round(delta)
        if delta > 0.0 and self.params.long_only:
            delta = min(delta, self._affordable(cash, price))
        elif delta < 0.0 and self.params.long_only:
            delta = max(delta, -self._lot_round(qty))
        if delta == 0.0 or abs(delta) < self.params.min_qty or abs(delta) * price < self.params.min_notional:
            return 0.0
        return delta

    def fill(self, qty: float, open_price: float) -> Fill:
        """Execute `qty` (signed) at the bar's open: slippage, tick, fee."""
        price = self.buy_price(open_price) if qty > 0 else self.sell_price(open_price)
        notional = abs(qty) * price
        return Fill(qty, price, notional, notional * self.fee_rate)

    def apply(self, fill: Fill, cash: float, qty: float) -> tuple[float, float]:
        """Balances after `fill`: (cash, qty). A position within dust of zero becomes exactly 0."""
        new_qty = qty + fill.qty
        if abs(new_qty) < self._dust:
            new_qty = 0.0
        return cash + fill.cash_delta, new_qty

    def execute(self, target_weight: float, cash: float, qty: float, open_price: float
                ) -> tuple[Fill | None, float, float]:
        """order_for_target + fill + apply: (fill or None, cash, qty) after the bar's open."""
        order = self.order_for_target(target_weight, cash, qty, open_price)
        if order == 0.0:
            return None, cash, qty
        fill = self.fill(order, open_price)
        cash, qty = self.apply(fill, cash, qty)
        return fill, cash, qty

    # -- rounding -------------------------------------------------------------------------------

    def _lot_round(self, qty: float) -> float:
        step = self._step
        if step <= 0.0:
            return qty
        steps = math.floor(abs(qty) / step + _EPS)
        return math.copysign(round(steps * step, self._step_dec), qty) if steps else 0.0

    def _affordable(self, cash: float, open_price: float) -> float:
        """Largest lot-rounded buy whose notional plus fee fits in `cash`."""
        if cash <= 0.0:
            return 0.0
        price = self.buy_price(open_price)
        qty = self._lot_round(cash / (price * (1.0 + self.fee_rate)))
        while qty > 0.0:
            notional = qty * price
            if notional + notional * self.fee_rate <= cash:
                break
            qty = self._lot_round(qty - (self._step or qty * 1e-12))
        return max(qty, 0.0)

    def _tick_round(self, price: float, up: bool) -> float:
        tick = self._tick
        if tick <= 0.0:
            return price
        ticks = price / tick
        n = math.ceil(ticks - _EPS) if up else math.floor(ticks + _EPS)
        rounded = round(n * tick, self._tick_dec)
        return rounded if rounded > 0.0 else price  # a tick coarser than the price: leave it


def _decimals(step: float) -> int:
    """Decimal places that represent multiples of `step` (1e-5 -> 5, 0.25 -> 2, 10 -> 0)."""
    if step <= 0.0:
        return 12
    for places in range(0, 16):
        if abs(round(step, places) - step) <= step * 1e-9:
            return places
    return 15
