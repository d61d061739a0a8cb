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


def test_best_baseline_is_the_highest_sharpe() -> None:
    rng = np.random.default_rng(5)
    up = np.abs(rng.normal(0.001, 0.002, size=300))
    result = evaluate_split({"agent": _trace(up * 0.1), "voltarget": _trace(up * 0.5), "buyhold": _trace(up * 0.9),
                             "flat": _trace(np.zeros(300), 0.0)}, PPY, seed=0, n_boot=100)
    assert result["best_baseline"] in ("voltarget", "buyhold")
    assert result["metrics"]["flat"]["sharpe"] == 0.0


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
