"""Evaluation metrics and the bootstrap CI of the Sharpe difference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coin_cli.pipelines.metrics import (
    EquityTrace,
    bars_per_year,
    best_by_sharpe,
    compute_metrics,
    max_drawdown,
    sharpe,
    sharpe_difference_ci,
    sortino,
)

DAY_MS = 24 * 3600 * 1000


def _trace(equity, weight=None, fees=None, notional=None, fills=None) -> EquityTrace:
    equity = np.asarray(equity, dtype=float)
    n = equity.size - 1
    zeros = np.zeros(n)
    return EquityTrace(equity=equity, weight=np.asarray(weight if weight is not None else zeros, dtype=float),
                       fees=np.asarray(fees if fees is not None else zeros, dtype=float),
                       traded_notional=np.asarray(notional if notional is not None else zeros, dtype=float),
                       fills=np.asarray(fills if fills is not None else zeros))


def test_bars_per_year_from_interval() -> None:
    assert bars_per_year(DAY_MS) == pytest.approx(365.0)
    assert bars_per_year(3600_000) == pytest.approx(365.0 * 24)


def test_known_curve_metrics() -> None:
    # 1 -> 1.1 -> 0.99 -> 1.089: +10%, -10%, +10%
    equity = [100.0, 110.0, 99.0, 108.9]
    m = compute_metrics(_trace(equity, weight=[1, 0.5, 0], fees=[0.1, 0.2, 0.0], notional=[100, 50, 0],
                               fills=[1, 1, 0]), periods_per_year=365)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["annualised_return"] == pytest.approx(1.089 ** (365 / 3) - 1)
    r = np.array([0.1, -0.1, 0.1])
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 3) * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["fees"] == pytest.approx(0.3)
    assert m["trades"] == 2
    assert m["exposure"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx(150 / np.mean(equity))
    assert m["bars"] == 3


def test_flat_curve_is_zero_not_nan() -> None:
    m = compute_metrics(_trace([100.0] * 10), periods_per_year=8760)
    assert m["sharpe"] == 0.0 and m["sortino"] == 0.0 and m["max_drawdown"] == 0.0
    assert m["total_return"] == 0.0 and m["annualised_return"] == 0.0


def test_sortino_without_downside_is_none_and_ruin_is_minus_one() -> None:
    assert sortino(np.array([0.01, 0.02, 0.01]), 365) is None
    m = compute_metrics(_trace([100.0, 50.0, 0.0]), periods_per_year=365)
    assert m["annualised_return"] == -1.0 and m["max_drawdown"] == 1.0


def test_max_drawdown_uses_the_running_peak() -> None:
    assert max_drawdown(np.array([1.0, 2.0, 1.0, 3.0, 2.4])) == pytest.approx(0.5)


def test_sharpe_ci_brackets_a_real_edge_and_straddles_zero_without_one() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 0.01, size=2000)
    better = base + 0.002  # same noise, a clear edge
    ci = sharpe_difference_ci(better, base, 8760, seed=3)
    assert ci["low"] > 0 and ci["low"] <= ci["diff"] <= ci["high"]
    noise = rng.normal(0.0, 0.01, size=2000)
    ci0 = sharpe_difference_ci(noise, rng.normal(0.0, 0.01, size=2000), 8760, seed=3)
    assert ci0["low"] < 0 < ci0["high"]
    # paired and seeded: same inputs and seed -> same interval
    assert sharpe_difference_ci(better, base, 8760, seed=3) == ci
    with pytest.raises(ValueError, match="length"):
        sharpe_difference_ci(better, base[:-1], 8760)


def test_best_by_sharpe_prefers_first_on_ties() -> None:
    metrics = {"a": {"sharpe": 1.0}, "b": {"sharpe": 2.0}, "c": {"sharpe": 2.0}}
    assert best_by_sharpe(metrics, ["a", "b", "c"]) == "b"
    assert best_by_sharpe(metrics, ["c", "b"]) == "c"
    assert sharpe(np.array([0.01]), 365) == 0.0
