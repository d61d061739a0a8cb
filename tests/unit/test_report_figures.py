"""The trade figures from a hand-written metrics.jsonl whose answers are worked out here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from coin_cli.report.decimate import minmax
from coin_cli.report.figures import read_series, trade_figures

HOUR = 3_600_000
JAN31_23H = 1_706_742_000_000   # 2024-01-31T23:00:00Z


def _write(path: Path, rows: list[tuple[int, float, float, float, str]]) -> Path:
    with path.open("w") as fh:
        for t, close, equity, position, risk in rows:
            fh.write(json.dumps({"bar": t, "close": close, "equity": equity, "cash": 0, "position": position,
                                 "pnl": 0, "drawdown": 0, "risk": risk, "reason": f"r-{risk}", "target": None,
                                 "order": None, "submit_us": 0, "total_us": 1, "lat_us": [0] * 7}) + "\n")
        fh.write('{"drift_bar":1,"psi":{}}\n')   # a non-bar record is skipped
    return path


def test_figures_of_a_known_curve(tmp_path: Path) -> None:
    # equity 100 -> 110 -> 99 -> 121 over four hourly bars crossing a month end (Jan 31 23h, Feb 1 ...)
    rows = [(JAN31_23H, 10.0, 100.0, 0.0, "ACTIVE"), (JAN31_23H + HOUR, 11.0, 110.0, 10.0, "ACTIVE"),
            (JAN31_23H + 2 * HOUR, 9.9, 99.0, 10.0, "REDUCING"), (JAN31_23H + 3 * HOUR, 12.1, 121.0, 0.0, "HALTED")]
    series = read_series(_write(tmp_path / "metrics.jsonl", rows))
    fig = trade_figures(series, {"trades": 2, "fees": 0.5, "turnover": 220.0}, HOUR)
    assert fig["bars"] == 4
    assert fig["total_return"] == pytest.approx(0.21)
    assert fig["max_drawdown"] == pytest.approx(0.1)
    assert fig["max_drawdown_peak"] == "2024-02-01T00:00:00Z"
    assert fig["max_drawdown_trough"] == "2024-02-01T01:00:00Z"
    assert fig["max_drawdown_recovered"] == "2024-02-01T02:00:00Z"
    r = np.array([0.1, -0.1, 121 / 99 - 1])
    ppy = 365 * 24
    assert fig["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy))
    assert fig["sortino"] == pytest.approx(r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(ppy))
    assert fig["annualised_return"] == pytest.approx(1.21 ** (ppy / 3) - 1)
    assert fig["turnover"] == pytest.approx(220.0 / np.mean([100, 110, 99, 121]))
    # weight = position * close / equity: 0, 1, 1, 0
    assert fig["exposure"] == pytest.approx(0.5)
    assert fig["time_in_state"] == {"ACTIVE": 0.5, "REDUCING": 0.25, "HALTED": 0.25}
    assert fig["monthly_returns"] == {"2024-01": 0.0, "2024-02": pytest.approx(0.21)}
    assert fig["buy_and_hold_return"] == pytest.approx(0.21)
    assert [c["state"] for c in fig["risk_changes"]] == ["REDUCING", "HALTED"]
    assert (fig["trades"], fig["fees"]) == (2, 0.5)


def test_an_empty_run_has_zero_figures(tmp_path: Path) -> None:
    fig = trade_figures(read_series(tmp_path / "missing.jsonl"), {}, HOUR)
    assert fig["bars"] == 0 and fig["total_return"] == 0.0 and fig["monthly_returns"] == {}


def test_minmax_keeps_every_extreme_of_a_million_points() -> None:
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.standard_normal(1_000_000))
    y[777_777] = y.min() - 50.0          # a one-bar crash: must survive decimation
    x = np.arange(y.size)
    dx, dy = minmax(x, y, 1000)
    assert dy.size <= 2002
    assert np.all(np.diff(dx) > 0)                      # time order kept
    assert dy.min() == y.min() and dy.max() == y.max()  # no drawdown smoothed away
    assert 777_777 in dx
    np.testing.assert_array_equal(dy, y[dx])            # only real points
    # each column's own min and max are there
    edges = np.linspace(0, y.size, 1001).astype(int)
    for a, b in zip(edges[:-1:97], edges[1::97], strict=True):
        inside = dy[(dx >= a) & (dx < b)]
        assert inside.min() == y[a:b].min() and inside.max() == y[a:b].max()


def test_minmax_leaves_short_series_alone() -> None:
    x, y = np.arange(10), np.arange(10.0)
    dx, dy = minmax(x, y, 100)
    assert dx is x and dy.size == 10
