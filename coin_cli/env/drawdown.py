"""Drawdown from the equity PEAK: the one definition TradingEnv, the rollout, the runtime's risk
manager and the evaluation metrics share (issue 14: it was written five times).

`1 - equity / peak`, where the peak is the highest equity seen so far (the equity itself when it
is a new high). An account whose peak is not positive has never had anything to lose: its
drawdown is 1.0 (ruined), the value the env's observation and the kill switch both want.
"""

from __future__ import annotations

import numpy as np


def peak_and_drawdown(equity: float, peak: float) -> tuple[float, float]:
    """The new peak after marking `equity`, and the drawdown from it."""
    if equity > peak:
        peak = equity
    return peak, (1.0 - equity / peak if peak > 0.0 else 1.0)


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """The drawdown at every point of an equity curve (the same arithmetic, vectorised)."""
    equity = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(equity) if equity.size else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0.0, 1.0 - equity / np.where(peak > 0.0, peak, 1.0), 1.0)


def max_drawdown(equity: np.ndarray) -> float:
    """The largest drawdown of an equity curve; 0.0 for an empty one."""
    series = drawdown_series(equity)
    return float(series.max()) if series.size else 0.0
