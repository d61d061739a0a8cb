"""RiskManager: explicit states ACTIVE / REDUCING / HALTED, persisted with the ledger.

Two gates, each decision returned with its reason (the loop writes the reason into metrics.jsonl
for every bar and state changes into the state file's risk_events and the log):

- `approve_target` at the decision (bar close): state, stale data and the position limit.
  ACTIVE allows any target within +-max_position (0..max_position long-only); REDUCING and a
  stale bar allow only a smaller position on the same side; HALTED allows nothing but, with
  flatten_on_halt (the default), a flat target.
- `cap_order` at the order (next open, when the order is sized): the largest single order
  and the daily turnover budget, both in quote currency. They limit NEW risk: an order that only
  reduces exposure (REDUCING, the HALTED flatten, any move toward flat) is never cut by them, so
  after a halt the position is zero at the next open and the drawdown stops within one bar's
  move of `max_drawdown`; its notional still counts toward the day's turnover. The capped target is sized again by
  the ExecutionModel, so exchange-filter rounding (lot step, min notional) applies after capping
  and in one place only.

Drawdown is measured from the equity PEAK: REDUCING at `reduce_drawdown`, back to ACTIVE below
half of it (hysteresis, so the state does not flap), HALTED (the kill switch) at `max_drawdown`.
HALTED is sticky across restarts until `reset_halt` (`coin trade --reset-halt`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coin_cli.env.drawdown import peak_and_drawdown

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runtime.state import Checkpoint

log = logging.getLogger("coin.runtime.risk")

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
RISK_STATES = (ACTIVE, REDUCING, HALTED)
DAY_MS = 86_400_000

RiskEventHook = Callable[[int | None, str, str, str], None]
"""(bar open time, from state, to state, reason) -> None."""


@dataclass(frozen=True)
class RiskLimits:
    max_position: float = 1.0
    max_order_notional: float = 1_000_000.0
    max_daily_turnover: float = 50.0          # multiples of equity per UTC day
    max_drawdown: float = 0.2
    reduce_drawdown: float = 0.15
    flatten_on_halt: bool = True
    stale_ms: int = 2 * 3_600_000
    long_only: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, interval_ms: int) -> RiskLimits:
        r = settings.risk
        return cls(max_position=r.max_position, max_order_notional=r.max_order_notional,
                   max_daily_turnover=r.max_daily_turnover, max_drawdown=r.max_drawdown,
                   reduce_drawdown=r.reduce_drawdown, flatten_on_halt=r.flatten_on_halt,
                   stale_ms=int(r.stale_intervals * interval_ms), long_only=settings.env.long_only)

    def describe(self) -> dict[str, float | bool | str]:
        return {
            "max_position": self.max_position,
            "max_order_notional": self.max_order_notional,
            "max_daily_turnover": f"{self.max_daily_turnover:g}x equity",
            "max_drawdown": self.max_drawdown,
            "reduce_drawdown": self.reduce_drawdown,
            "flatten_on_halt": self.flatten_on_halt,
            "stale_after_s": self.stale_ms / 1000,
        }


def reduces_exposure(target: float, current: float) -> bool:
    """True when moving from weight `current` to `target` only shrinks the position (same side, or flat)."""
    return target * current >= 0.0 and abs(target) <= abs(current)


class RiskManager:
    def __init__(self, limits: RiskLimits, on_event: RiskEventHook | None = None) -> None:
        self.limits = limits
        self.on_event = on_event
        self.state = ACTIVE
        self.reason = "start"
        self.since_bar: int | None = None
        self.peak_equity = 0.0
        self.drawdown = 0.0
        self.max_drawdown_seen = 0.0
        self.day: int | None = None
        self.day_turnover = 0.0
        low = 0.0 if limits.long_only else -limits.max_position
        self._low, self._high = low, limits.max_position
        self._stale_ms = limits.stale_ms
        # Below this drawdown an ACTIVE manager stays ACTIVE: on_mark's common case ends there.
        self._calm = min(limits.reduce_drawdown, limits.max_drawdown)

    # ---- persistence ---------------------------------------------------------------------------

    def restore(self, cp: Checkpoint) -> None:
        self.state, self.reason, self.since_bar = cp.risk_state, cp.risk_reason, cp.risk_since_bar
        self.peak_equity, self.max_drawdown_seen = cp.peak_equity, cp.max_drawdown
        self.day, self.day_turnover = cp.day, cp.day_turnover

    def snapshot(self, cp: Checkpoint) -> None:
        cp.risk_state, cp.risk_reason, cp.risk_since_bar = self.state, self.reason, self.since_bar
        cp.peak_equity, cp.max_drawdown = self.peak_equity, self.max_drawdown_seen
        cp.day, cp.day_turnover = self.day, self.day_turnover

    # ---- state machine -------------------------------------------------------------------------

    def on_mark(self, equity: float, bar: int) -> None:
        """Update the peak and the drawdown from it; move between the states."""
        self.peak_equity, dd = peak_and_drawdown(equity, self.peak_equity)
        peak = self.peak_equity
        self.drawdown = dd
        if dd > self.max_drawdown_seen:
            self.max_drawdown_seen = dd
        state = self.state
        if dd < self._calm and state == ACTIVE:
            return
        if state == HALTED:
            return
        limits = self.limits
        if dd >= limits.max_drawdown:
            self._move(HALTED, f"kill switch: drawdown {dd:.2%} from peak {peak:,.2f} "
                               f">= {limits.max_drawdown:.2%}", bar)
        elif state == ACTIVE and dd >= limits.reduce_drawdown:
            self._move(REDUCING, f"drawdown {dd:.2%} from peak >= {limits.reduce_drawdown:.2%}: reduce only", bar)
        elif state == REDUCING and dd < limits.reduce_drawdown / 2:
            self._move(ACTIVE, f"drawdown {dd:.2%} back below {limits.reduce_drawdown / 2:.2%}", bar)

    def _move(self, to: str, reason: str, bar: int | None) -> None:
        before = self.state
        self.state, self.reason, self.since_bar = to, reason, bar
        from coin_cli.data.schema import ms_to_iso

        (log.error if to == HALTED else log.warning)("risk %s -> %s at bar %s: %s", before, to, ms_to_iso(bar), reason)
        if self.on_event is not None:
            self.on_event(bar, before, to, reason)

    def halt(self, reason: str, bar: int | None) -> None:
        """HALTED from outside the drawdown rules (a reconciliation that does not add up)."""
        if self.state != HALTED:
            self._move(HALTED, reason, bar)

    def reset_halt(self, equity: float, bar: int | None) -> bool:
        """Operator reset after a halt: ACTIVE again, with the peak restarted at today's equity."""
        if self.state == ACTIVE:
            return False
        self.peak_equity = equity
        self.drawdown = 0.0
        self._move(ACTIVE, "reset by operator (--reset-halt)", bar)
        return True

    # ---- gates ----------------------------------------------------------------------------------

    def approve_target(self, target: float, current: float, bar_close_time: int,
                       now_ms: int) -> tuple[float | None, str]:
        """The target to trade towards at the next open, or None (place no order), and why."""
        state = self.state
        if state == HALTED:
            # a ledger that disagrees with the exchange sends nothing, not even a flatten
            if self.limits.flatten_on_halt and current != 0.0 and not self.reason.startswith("reconcile"):
                return 0.0, "halted: flatten"
            return None, "halted"
        reason = "ok"
        if target > self._high:
            target, reason = self._high, "clip: max_position"
        elif target < self._low:
            target, reason = self._low, "clip: max_position"
        stale = now_ms - bar_close_time > self._stale_ms
        if stale or state == REDUCING:
            # No new risk: a smaller position on the same side (or flat) only.
            if not (abs(target) <= abs(current) and target * current >= 0.0):
                return None, "stale: no new risk" if stale else "reducing: no new risk"
            reason = "stale: reduce only" if stale else "reducing: reduce only"
        return target, reason

    def cap_order(self, target: float, current: float, order_notional: float, equity: float,
                  bar_open_time: int) -> tuple[float, str]:
        """Clip the target so the order respects the order-size and daily-turnover limits.

        `order_notional` is the unsigned notional of the order sized for `target`. Returns the
        (possibly smaller) target and the reason; the caller sizes the order again when it changed.
        """
        if reduces_exposure(target, current):
            return target, "ok"
        day = bar_open_time // DAY_MS
        if day != self.day:
            self.day, self.day_turnover = day, 0.0
        limits = self.limits
        allowed = limits.max_order_notional
        reason = "ok"
        budget = limits.max_daily_turnover * equity - self.day_turnover
        if budget < allowed:
            allowed, reason = max(budget, 0.0), "cap: max_daily_turnover"
        elif order_notional > allowed:
            reason = "cap: max_order_notional"
        if order_notional <= allowed or order_notional <= 0.0 or equity <= 0.0:
            return target, "ok"
        # Move only part of the way: the weight change scales with the notional.
        return current + (target - current) * (allowed / order_notional), reason

    def on_fill(self, notional: float, bar_open_time: int) -> None:
        day = bar_open_time // DAY_MS
        if day != self.day:
            self.day, self.day_turnover = day, 0.0
        self.day_turnover += abs(notional)
