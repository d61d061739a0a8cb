"""Evaluation against baselines, the promotion gate, artifacts and the equity chart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from coin_cli.pipelines.evaluate import evaluate_split, promotion_decision, stitch, table_rows, write_evaluation
from coin_cli.pipelines.metrics import EquityTrace

PPY = 8760.0


def _trace(returns: np.ndarray, weight: float = 1.0) -> EquityTrace:
    equity = np.concatenate([[10_000.0], 10_000.0 * np.cumprod(1.0 + returns)])
    n = returns.size
    return EquityTrace(equity, np.full(n, weight), np.zeros(n), np.zeros(n), np.zeros(n))


def _split(agent_edge: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, size=600)
    traces = {
        "agent": _trace(market + agent_edge),
        "voltarget": _trace(market * 0.5, 0.5),
        "buyhold": _trace(market),
        "flat": _trace(np.zeros(600), 0.0),
    }
    return evaluate_split(traces, PPY, seed=1, n_boot=300)


def test_gate_promotes_only_when_both_splits_beat_the_best_baseline_by_the_margin() -> None:
    good = {"val": _split(0.003, 1), "test": _split(0.003, 2)}
    decision = promotion_decision(good, margin=0.5)
    assert decision["status"] == "promoted" and decision["reasons"] == []
    assert decision["checks"]["test"]["sharpe_diff"] > 0.5
    assert good["test"]["sharpe_diff"]["low"] > 0

    mixed = {"val": _split(0.003, 1), "test": _split(-0.003, 2)}
    decision = promotion_decision(mixed, margin=0.0)
    assert decision["status"] == "not_promoted"
    assert len(decision["reasons"]) == 1 and decision["reasons"][0].startswith("test:")
    # an unreachable margin blocks even a good agent
    assert promotion_decision(good, margin=1e6)["status"] == "not_promoted"


def _with_sharpe(z: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Returns whose sample mean and std (ddof=1) are exactly `mean` and `std`."""
    return mean + std * z


def test_best_baseline_is_the_highest_sharpe() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    z = (x - x.mean()) / x.std(ddof=1)                     # mean 0, std 1 exactly (to float precision)
    ann = np.sqrt(PPY)
    # Sharpe per bar 0.10 (voltarget) vs 0.05 (buyhold): different shapes of risk, not scaled copies
    for vol_ratio, hold_ratio, expected in ((0.10, 0.05, "voltarget"), (0.04, 0.08, "buyhold")):
        traces = {"agent": _trace(_with_sharpe(z, 0.0001, 0.01)),
                  "voltarget": _trace(_with_sharpe(z, vol_ratio * 0.004, 0.004), 0.5),
                  "buyhold": _trace(_with_sharpe(z[::-1].copy(), hold_ratio * 0.012, 0.012)),
                  "flat": _trace(np.zeros(300), 0.0)}
        result = evaluate_split(traces, PPY, seed=0, n_boot=100)
        assert result["best_baseline"] == expected
        assert result["metrics"]["voltarget"]["sharpe"] == pytest.approx(vol_ratio * ann, rel=1e-9)
        assert result["metrics"]["buyhold"]["sharpe"] == pytest.approx(hold_ratio * ann, rel=1e-9)
        assert result["metrics"]["flat"]["sharpe"] == 0.0
        assert result["sharpe_diff"]["diff"] == pytest.approx((0.01 - max(vol_ratio, hold_ratio)) * ann, rel=1e-9)


def test_a_ruined_agent_is_reported_and_not_promoted() -> None:
    good = {"val": _split(0.003, 1), "test": _split(0.003, 2)}
    assert promotion_decision(good, margin=0.5)["status"] == "promoted"
    good["test"]["metrics"]["agent"]["ruined"] = True
    decision = promotion_decision(good, margin=0.5)
    assert decision["status"] == "not_promoted" and decision["checks"]["test"]["ruined"] is True
    assert decision["reasons"] == [decision["reasons"][0]] and "ruin stop" in decision["reasons"][0]
    # a padded (ruined) trace: flat at its last equity, counted as ruined from its first padded bar
    n = 5
    trace = EquityTrace(np.array([100.0, 90.0, 40.0, 40.0, 40.0, 40.0]), np.zeros(n), np.zeros(n), np.zeros(n),
                        np.zeros(n), ruined=np.array([False, False, True, True, True]))
    assert trace.ruined_from == 2
    joined = stitch([_trace(np.array([0.1])), trace])
    assert joined.ruined_from == 3 and joined.ruined.size == joined.weight.size == 6


def test_stitch_chains_fold_returns() -> None:
    a, b = _trace(np.array([0.1, 0.0])), _trace(np.array([-0.5]))
    joined = stitch([a, b])
    np.testing.assert_allclose(joined.equity, [10_000, 11_000, 11_000, 5_500])
    assert joined.weight.size == 3


def test_artifacts_and_table(tmp_path: Path) -> None:
    evaluation = {"val": _split(0.003, 1), "test": _split(0.003, 2)}
    write_evaluation(tmp_path, evaluation)
    loaded = json.loads((tmp_path / "evaluation.json").read_text())
    assert loaded["test"]["best_baseline"] == evaluation["test"]["best_baseline"]
    rows = list(csv.DictReader((tmp_path / "evaluation.csv").open()))
    assert len(rows) == 8 and {r["policy"] for r in rows} == {"agent", "voltarget", "buyhold", "flat"}
    assert float(rows[0]["sharpe"]) == pytest.approx(evaluation["val"]["metrics"]["agent"]["sharpe"])
    columns, table = table_rows(evaluation)
    assert columns[:3] == ["split", "policy", "total_return"] and len(table) == 8
