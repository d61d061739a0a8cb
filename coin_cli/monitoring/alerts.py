"""AlertEngine: the runtime's alert rules, each with a code, de-duplicated, handed to a Notifier.

A condition raises its alert once when it starts and stays quiet while it lasts (repeats are
only counted); it can raise again after it has cleared. The notifier's `notify` must return at
once (LogNotifier writes a log line; the Telegram outbox enqueues), and a notifier that fails is
logged, never allowed to stop the trading loop.

Codes: DRAWDOWN (drawdown from the peak crossed the REDUCING threshold), HALTED (kill switch),
STALE_DATA (a bar older than the stale limit), ORDER_REJECTED (the broker refused an order),
RECONCILE_MISMATCH (state vs exchange), STREAM_DOWN (the market source lost its stream).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from coin_cli.monitoring.notifier import Alert


def _iso(ms: int | None) -> str:
    """A bar's open time as a person reads it (ISO UTC), not raw milliseconds."""
    from coin_cli.data.schema import ms_to_iso

    return ms_to_iso(ms) or "?"

if TYPE_CHECKING:
    from coin_cli.monitoring.notifier import Notifier

log = logging.getLogger("coin.alerts")

CODES = ("DRAWDOWN", "HALTED", "STALE_DATA", "ORDER_REJECTED", "RECONCILE_MISMATCH", "STREAM_DOWN",
         "FEATURE_DRIFT")


class AlertEngine:
    def __init__(self, notifier: Notifier, context: str, drawdown_threshold: float = 0.15) -> None:
        self.notifier = notifier
        self.context = context                 # e.g. "BTCUSDT 1h replay voltarget"
        self.drawdown_threshold = drawdown_threshold
        self._active: set[tuple[str, str]] = set()
        self.raised: dict[str, int] = {}
        self.suppressed = 0

    @property
    def total(self) -> int:
        return sum(self.raised.values())

    def is_active(self, code: str, key: str = "") -> bool:
        return (code, key) in self._active

    def raise_alert(self, code: str, text: str, severity: str = "warning", key: str = "") -> bool:
        """Send the alert unless the same (code, key) is still active. True when sent."""
        if code not in CODES:
            raise ValueError(f"unknown alert code {code!r}")
        ident = (code, key)
        if ident in self._active:
            self.suppressed += 1
            return False
        self._active.add(ident)
        self.raised[code] = self.raised.get(code, 0) + 1
        alert = Alert(code=code, text=f"{self.context}: {text}", severity=severity)
        try:
            self.notifier.notify(alert)
        except Exception as exc:  # delivery trouble must never stop trading
            log.error("notifier failed for %s alert (%s: %s); the alert was: %s",
                      code, type(exc).__name__, exc, alert.text)
        return True

    def clear(self, code: str, key: str = "") -> None:
        self._active.discard((code, key))

    # ---- rules ----------------------------------------------------------------------------------

    def check_drawdown(self, drawdown: float, equity: float, peak: float) -> None:
        """Called every bar: cheap when nothing changes."""
        threshold = self.drawdown_threshold
        if drawdown >= threshold:
            if ("DRAWDOWN", "") not in self._active:
                self.raise_alert("DRAWDOWN", f"drawdown {drawdown:.2%} from peak {peak:,.2f} "
                                 f"(equity {equity:,.2f}, threshold {threshold:.2%})")
        elif drawdown < threshold / 2 and ("DRAWDOWN", "") in self._active:
            self.clear("DRAWDOWN")

    def risk_changed(self, bar: int | None, before: str, after: str, reason: str) -> None:
        if after == "HALTED":
            self.raise_alert("HALTED", f"trading halted at bar {_iso(bar)}: {reason}", severity="critical")
        elif before == "HALTED":
            self.clear("HALTED")

    def stale(self, bar: int, age_s: float, limit_s: float) -> None:
        self.raise_alert("STALE_DATA", f"bar {_iso(bar)} is {age_s:,.0f}s old (limit {limit_s:,.0f}s): no new risk")

    def fresh(self) -> None:
        if ("STALE_DATA", "") in self._active:
            self.clear("STALE_DATA")

    def order_rejected(self, client_order_id: str, reason: str) -> None:
        self.raise_alert("ORDER_REJECTED", f"order {client_order_id} rejected: {reason}", key=client_order_id)

    def reconcile_mismatch(self, detail: str) -> None:
        self.raise_alert("RECONCILE_MISMATCH", detail, severity="critical")

    def reconciled(self) -> None:
        self.clear("RECONCILE_MISMATCH")

    def stream_down(self, detail: str) -> None:
        self.raise_alert("STREAM_DOWN", f"market stream down: {detail}", severity="critical")

    def stream_up(self) -> None:
        self.clear("STREAM_DOWN")

    def feature_drift(self, name: str, psi: float, threshold: float) -> None:
        self.raise_alert("FEATURE_DRIFT", f"feature {name} drifted from its training distribution: "
                         f"PSI {psi:.3f} > {threshold:g}", key=name)

    def drift_cleared(self, name: str) -> None:
        self.clear("FEATURE_DRIFT", key=name)
