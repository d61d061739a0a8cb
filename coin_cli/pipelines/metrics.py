"""Performance metrics of an equity curve and a block-bootstrap confidence interval of the
Sharpe difference between two strategies run over the same bars. Pure numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coin_cli.env.drawdown import max_drawdown

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000

METRIC_NAMES = (
    "total_return", "annualised_return", "sharpe", "sortino", "max_drawdown",
    "turnover", "fees", "trades", "exposure", "final_equity", "bars", "ruined",
)


@dataclass(frozen=True)
class EquityTrace:
    """One strategy over one split: equity at every bar's close (first entry = start equity),
    the position weight held over each bar, and per-bar fees, traded notional and fills.
    `ruined` marks the bars after the env's ruin stop ended the policy's episode: the trace stays
    flat at its last equity there, so every policy covers the same bars of a split."""

    equity: np.ndarray
    weight: np.ndarray
    fees: np.ndarray
    traded_notional: np.ndarray
    fills: np.ndarray
    ruined: np.ndarray | None = None

    @property
    def ruined_from(self) -> int | None:
        """Index of the first bar spent ruined, or None."""
        if self.ruined is None or not np.any(self.ruined):
            return None
        return int(np.argmax(self.ruined))

    @property
    def returns(self) -> np.ndarray:
        return bar_returns(self.equity)


def bars_per_year(interval_ms: int) -> float:
    return MS_PER_YEAR / float(interval_ms)


def bar_returns(equity: np.ndarray) -> np.ndarray:
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size < 2:
        return np.zeros(0)
    prev = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(prev > 0, equity[1:] / prev - 1.0, 0.0)
    return out


def sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe of per-bar returns (risk-free 0); 0.0 for a constant series."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size < 2:
        return 0.0
    std = returns.std(ddof=1)
    if not std > 1e-15:
        return 0.0
    return float(returns.mean() / std * math.sqrt(periods_per_year))


def sortino(returns: np.ndarray, periods_per_year: float) -> float | None:
    """Annualised Sortino (target 0); None when there is no downside to divide by."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 1e-15:
        return 0.0 if returns.mean() <= 0 else None
    return float(returns.mean() / downside * math.sqrt(periods_per_year))


def compute_metrics(trace: EquityTrace, periods_per_year: float) -> dict[str, float | int | None]:
    equity = np.asarray(trace.equity, dtype=np.float64)
    returns = trace.returns
    n = returns.size
    total = float(equity[-1] / equity[0] - 1.0) if equity.size >= 2 and equity[0] > 0 else 0.0
    annualised: float | None
    if n == 0:
        annualised = 0.0
    elif total <= -1.0:
        annualised = -1.0
    else:
        try:
            annualised = float((1.0 + total) ** (periods_per_year / n) - 1.0)
        except OverflowError:  # a few 1s bars compounded over a year: no meaningful figure
            annualised = None
    mean_equity = float(equity.mean()) if equity.size else 0.0
    traded = float(np.sum(trace.traded_notional))
    return {
        "total_return": total,
        "annualised_return": annualised,
        "sharpe": sharpe(returns, periods_per_year),
        "sortino": sortino(returns, periods_per_year),
        "max_drawdown": max_drawdown(equity),
        "turnover": traded / mean_equity if mean_equity > 0 else 0.0,
        "fees": float(np.sum(trace.fees)),
        "trades": int(np.sum(trace.fills)),
        "exposure": float(np.mean(np.abs(trace.weight))) if len(trace.weight) else 0.0,
        "final_equity": float(equity[-1]) if equity.size else 0.0,
        "bars": int(n),
        "ruined": trace.ruined_from is not None,
    }


def _sharpe_rows(samples: np.ndarray, periods_per_year: float) -> np.ndarray:
    mean = samples.mean(axis=1)
    std = samples.std(axis=1, ddof=1)
    out = np.zeros_like(mean)
    ok = std > 1e-15
    out[ok] = mean[ok] / std[ok] * math.sqrt(periods_per_year)
    return out


def sharpe_difference_ci(
    agent_returns: np.ndarray,
    baseline_returns: np.ndarray,
    periods_per_year: float,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    block: int | None = None,
    seed: int = 0,
) -> dict[str, float | int]:
    """Sharpe(agent) - Sharpe(baseline) with a paired circular block-bootstrap CI.

    Both series cover the same bars, so each resample draws the SAME bar blocks for both:
    the interval reflects the difference, not two independent noises. Blocks (default
    ~n^(1/3) bars) keep the short-range autocorrelation of bar returns.
    """
    a = np.asarray(agent_returns, dtype=np.float64)
    b = np.asarray(baseline_returns, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"return series differ in length: {a.size} vs {b.size}")
    n = a.size
    diff = sharpe(a, periods_per_year) - sharpe(b, periods_per_year)
    if n < 4:
        return {"diff": diff, "low": diff, "high": diff, "n_boot": 0, "block": 0, "level": level}
    block = block or max(1, round(n ** (1.0 / 3.0)))
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    index = ((starts[:, :, None] + np.arange(block)[None, None, :]) % n).reshape(n_boot, -1)[:, :n]
    boot = _sharpe_rows(a[index], periods_per_year) - _sharpe_rows(b[index], periods_per_year)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return {"diff": float(diff), "low": float(low), "high": float(high), "n_boot": n_boot, "block": int(block),
            "level": level}


def best_by_sharpe(metrics: dict[str, dict], names: Sequence[str]) -> str:
    """The name with the highest Sharpe (first wins ties, so the order is a preference)."""
    return max(names, key=lambda name: (metrics[name]["sharpe"], -list(names).index(name)))
