"""THE execution model: how a target weight becomes a fill, with its fee and slippage.

TradingEnv, the replay runtime and the paper broker all call this module, so a policy ends with
the same equity whichever of them runs it (DESIGN.md §4). Semantics:

- the target decided on bar t's close executes at bar t+1's OPEN, sized from the equity valued at
  that open (`cash + qty * open`);
- the order quantity is rounded DOWN (toward zero) to `lot_step`; a target of 0 sells the whole
  position (rounded to the step), so closing leaves no dust;
- the order is skipped (0.0) when its |quantity| < `min_qty` or its notional at the price it
  FILLS at (after slippage and the tick, as the exchange checks it) < `min_notional`;
- the fill price moves against the trader by `slippage_bps` and lands on the tick in the adverse
  direction (buys round up, sells down);
- `fee_bps` of the fill notional is charged in the quote currency;
- long-only (Binance Spot): weights are clipped to [0, 1] and a buy is sized so that notional plus
  fee fits in the cash, so cash never goes negative. Otherwise weights are clipped to [-1, 1];
- the no-trade band (`trade_band`): a target within `trade_band` of the current weight (valued at
  the open) is no order, except a target of 0 (closing is always allowed, so a band never leaves a
  position behind). Every policy gets it, in the env and in the runtime alike.

Pure Python floats; deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

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
    trade_band: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings | EnvConfig) -> ExecutionParams:
        """From `settings.env` (a whole Settings or just its env section)."""
        env = getattr(settings, "env", settings)
        return cls(fee_bps=env.fee_bps, slippage_bps=env.slippage_bps, lot_step=env.lot_step,
                   min_qty=env.min_qty, tick_size=env.tick_size, min_notional=env.min_notional,
                   long_only=env.long_only, trade_band=env.trade_band)


class Fill(NamedTuple):
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


_new_fill = tuple.__new__  # Fill without NamedTuple's Python-level __new__ (the env's hot path)


class ExecutionModel:
    def __init__(self, params: ExecutionParams | None = None):
        self.params = p = params or ExecutionParams()
        self.fee_rate = p.fee_bps * 1e-4
        self.slip_rate = p.slippage_bps * 1e-4
        self.min_weight = 0.0 if p.long_only else -1.0
        self._long_only = p.long_only
        self._min_qty = p.min_qty
        self._min_notional = p.min_notional
        self._up = 1.0 + self.slip_rate
        self._down = 1.0 - self.slip_rate
        self._step, self._step_inv = p.lot_step, _inverse(p.lot_step)
        self._tick, self._tick_inv = p.tick_size, _inverse(p.tick_size)
        self._dust = 0.5 * min(x for x in (p.lot_step, p.min_qty, 1e-12) if x > 0)
        self._band = p.trade_band

    def clip_weight(self, target_weight: float) -> float:
        if target_weight != target_weight:  # NaN stays NaN: order_for_target treats it as "hold"
            return target_weight
        return min(max(target_weight, self.min_weight), 1.0)

    def buy_price(self, open_price: float) -> float:
        """Open moved up by the slippage, rounded UP to the tick."""
        raw = open_price * self._up
        price = self._on_grid(raw, self._tick, self._tick_inv, up=True)
        return price if price > 0.0 else raw

    def sell_price(self, open_price: float) -> float:
        """Open moved down by the slippage, rounded DOWN to the tick."""
        raw = open_price * self._down
        price = self._on_grid(raw, self._tick, self._tick_inv, up=False)
        return price if price > 0.0 else raw  # a tick coarser than the price: leave it

    def order_for_target(self, target_weight: float, cash: float, qty: float, price: float) -> float:
        """Signed, lot-rounded base quantity that moves the position toward `target_weight` at
        `price` (the next bar's open); 0.0 when there is nothing to do or the order is too small."""
        if target_weight != target_weight or price <= 0.0:  # NaN target: hold
            return 0.0
        weight = 1.0 if target_weight > 1.0 else (self.min_weight if target_weight < self.min_weight
                                                  else target_weight)
        if weight == 0.0:
            delta = -qty
        else:
            equity = cash + qty * price
            if equity <= 0.0:
                return 0.0
            band = self._band
            if band and -band <= weight - qty * price / equity <= band:
                return 0.0
            delta = weight * equity / price - qty
        # Most calls (a target a hair off the position) end here: rounding down to the lot step
        # adds at most 1e-9 of a step, so an order under the minimums with a whole step added
        # stays under them whatever the rounding and the long-only caps (which only shrink it).
        mag = (delta if delta >= 0.0 else -delta) + self._step
        if mag < self._min_qty or mag * (price * self._up + self._tick) < self._min_notional:
            return 0.0
        if delta > 0.0:
            delta = self._lot(delta)
            if self._long_only:
                notional = delta * self.buy_price(price)
                if notional + notional * self.fee_rate > cash:
                    delta = self._affordable(cash, price)
        elif delta < 0.0:
            delta = -self._lot(-delta)
            if self._long_only and -delta > qty:
                delta = -self._lot(qty)
        if delta == 0.0 or (delta if delta > 0.0 else -delta) < self._min_qty:
            return 0.0
        fill_price = self.buy_price(price) if delta > 0.0 else self.sell_price(price)
        if (delta if delta > 0.0 else -delta) * fill_price < self._min_notional:
            return 0.0
        return delta

    def fill(self, qty: float, open_price: float) -> Fill:
        """Execute `qty` (signed) at the bar's open: slippage, tick, fee."""
        if qty > 0.0:
            price = self.buy_price(open_price)
            notional = qty * price
        else:
            price = self.sell_price(open_price)
            notional = -qty * price
        return Fill(qty, price, notional, notional * self.fee_rate)

    def apply(self, fill: Fill, cash: float, qty: float) -> tuple[float, float]:
        """Balances after `fill`: (cash, qty). A position within dust of zero becomes exactly 0."""
        new_qty = qty + fill.qty
        if -self._dust < new_qty < self._dust:
            new_qty = 0.0
        return cash - fill.qty * fill.price - fill.fee, new_qty

    def execute(self, target_weight: float, cash: float, qty: float, open_price: float
                ) -> tuple[Fill | None, float, float]:
        """order_for_target + fill + apply in one call: (fill or None, cash, qty) after the bar's
        open. The common path is written out flat because the env calls it on every step; a test
        holds it equal to the three-call path on random inputs."""
        if target_weight != target_weight or open_price <= 0.0:
            return None, cash, qty
        low = self.min_weight
        weight = 1.0 if target_weight > 1.0 else (low if target_weight < low else target_weight)
        if weight == 0.0:
            delta = -qty
        else:
            equity = cash + qty * open_price
            if equity <= 0.0:
                return None, cash, qty
            band = self._band
            if band and -band <= weight - qty * open_price / equity <= band:
                return None, cash, qty
            delta = weight * equity / open_price - qty
        step, inv, tick, tinv, eps = self._step, self._step_inv, self._tick, self._tick_inv, _EPS
        if delta > 0.0:
            if inv:
                delta = int(delta * inv + eps) / inv
            elif step > 0.0:
                delta = int(delta / step + eps) * step
            price = open_price * self._up
            if tinv:
                ticks = price * tinv - eps
                n = int(ticks)
                rounded = (n + 1 if n < ticks else n) / tinv
                price = rounded if rounded > 0.0 else price
            elif tick > 0.0:
                price = self.buy_price(open_price)
            notional = delta * price
            fee = notional * self.fee_rate
            if self._long_only and notional + fee > cash:
                delta = self._affordable(cash, open_price)
                notional = delta * price
                fee = notional * self.fee_rate
            size = delta
        elif delta < 0.0:
            size = -delta
            if inv:
                size = int(size * inv + eps) / inv
            elif step > 0.0:
                size = int(size / step + eps) * step
            if self._long_only and size > qty:
                size = self._lot(qty)
            delta = -size
            price = self.sell_price(open_price) if not tinv else int(open_price * self._down * tinv + eps) / tinv
            if price <= 0.0:
                price = open_price * self._down
            notional = size * price
            fee = notional * self.fee_rate
        else:
            return None, cash, qty
        if size == 0.0 or size < self._min_qty or size * price < self._min_notional:  # at the fill price
            return None, cash, qty
        new_qty = qty + delta
        if -self._dust < new_qty < self._dust:
            new_qty = 0.0
        return _new_fill(Fill, (delta, price, notional, fee)), cash - delta * price - fee, new_qty

    # -- rounding -------------------------------------------------------------------------------

    def _lot(self, qty: float) -> float:
        """A non-negative quantity rounded down to the lot step."""
        return self._on_grid(qty, self._step, self._step_inv, up=False)

    def _affordable(self, cash: float, open_price: float) -> float:
        """Largest lot-rounded buy whose notional plus fee fits in `cash`."""
        if cash <= 0.0:
            return 0.0
        price = self.buy_price(open_price)
        qty = self._lot(cash / (price * (1.0 + self.fee_rate)))
        for _ in range(8):  # float rounding can overshoot by an ulp: step back once or twice
            notional = qty * price
            if qty <= 0.0 or notional + notional * self.fee_rate <= cash:
                break
            qty = self._lot(qty - (self._step or qty * 1e-12))
        return max(qty, 0.0)

    @staticmethod
    def _on_grid(value: float, step: float, inverse: float, up: bool) -> float:
        """`value` (>= 0) rounded down (or up) to a multiple of `step`; a tolerance of 1e-9 steps
        keeps 0.3 / 0.1 at 3 steps. Multiples are formed as n / (1/step) when 1/step is a whole
        number, which gives the double nearest to the decimal (0.00003, not 3.0000000000000004e-05)."""
        if step <= 0.0:
            return value
        if inverse:
            steps = value * inverse
            rounded = _ceil(steps - _EPS) / inverse if up else int(steps + _EPS) / inverse
        else:
            steps = value / step
            rounded = _ceil(steps - _EPS) * step if up else int(steps + _EPS) * step
        return rounded


def _ceil(x: float) -> int:
    n = int(x)
    return n + 1 if n < x else n


def _inverse(step: float) -> float:
    """1/step when it is a whole number (decimal steps like 0.00001 or 0.25), else 0."""
    if step <= 0.0:
        return 0.0
    inverse = round(1.0 / step)
    return float(inverse) if inverse >= 1 and abs(inverse * step - 1.0) < 1e-12 else 0.0


def action_levels(levels: int | list[float], min_weight: float) -> list[float]:
    """The target weights of a discrete action space (`env.discrete_levels`): a count gives evenly
    spaced weights from `min_weight` (the execution model's lowest) to 1; a list is taken as the
    weights, action i -> levels[i]. TradingEnv and the exported policy (SB3Policy) both use this."""
    if isinstance(levels, int):
        return [min_weight + (1.0 - min_weight) * i / (levels - 1) for i in range(levels)]
    weights = [float(w) for w in levels]
    if min(weights) < min_weight or max(weights) > 1.0:
        raise ValueError(f"env.discrete_levels {weights!r}: weights must lie in [{min_weight:g}, 1]"
                         + (" (env.long_only is true)" if min_weight == 0.0 else ""))
    return weights
