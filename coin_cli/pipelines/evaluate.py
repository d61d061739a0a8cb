"""Honest evaluation of a trained agent against the baselines on the same bars, the promotion
gate, and the evaluation artifacts (evaluation.json, evaluation.csv, equity_test.svg).

Every strategy here was stepped through the same TradingEnv and execution model (the caller
builds the traces with FEAT's rollout), so the numbers differ only by the decisions taken.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.fsio import atomic_write_json, atomic_write_text
from coin_cli.pipelines.metrics import (
    METRIC_NAMES,
    EquityTrace,
    best_by_sharpe,
    compute_metrics,
    sharpe_difference_ci,
)

AGENT = "agent"
BASELINES = ("voltarget", "buyhold", "flat")
SPLITS = ("val", "test")
TABLE_METRICS = ("total_return", "annualised_return", "sharpe", "sortino", "max_drawdown", "turnover", "fees",
                 "trades", "exposure", "ruined")


def stitch(traces: Sequence[EquityTrace]) -> EquityTrace:
    """Walk-forward folds as one out-of-sample curve: per-bar returns chained from the first
    fold's starting equity (each fold restarts with the initial cash)."""
    if len(traces) == 1:
        return traces[0]
    returns = np.concatenate([t.returns for t in traces])
    start = float(traces[0].equity[0])
    equity = np.concatenate([[start], start * np.cumprod(1.0 + returns)])
    return EquityTrace(
        equity=equity,
        weight=np.concatenate([t.weight for t in traces]),
        fees=np.concatenate([t.fees for t in traces]),
        traded_notional=np.concatenate([t.traded_notional for t in traces]),
        fills=np.concatenate([t.fills for t in traces]),
        ruined=np.concatenate([t.ruined if t.ruined is not None else np.zeros(len(t.weight), dtype=bool)
                               for t in traces]),
    )


def evaluate_split(traces: Mapping[str, EquityTrace], periods_per_year: float, *, seed: int,
                   n_boot: int = 1000) -> dict[str, Any]:
    """Metrics of every strategy, the best baseline by Sharpe, and the agent's Sharpe difference
    to it with a paired bootstrap CI."""
    metrics = {name: compute_metrics(trace, periods_per_year) for name, trace in traces.items()}
    baselines = [name for name in BASELINES if name in traces]
    best = best_by_sharpe(metrics, baselines)
    ci = sharpe_difference_ci(traces[AGENT].returns, traces[best].returns, periods_per_year, seed=seed,
                              n_boot=n_boot)
    return {"metrics": metrics, "best_baseline": best, "sharpe_diff": ci}


def promotion_decision(evaluation: Mapping[str, Mapping[str, Any]], margin: float) -> dict[str, Any]:
    """`promoted` only when the agent's Sharpe beats the best baseline's by more than `margin`
    on validation AND on test; otherwise `not_promoted` with the reasons and the numbers."""
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    for split in SPLITS:
        result = evaluation[split]
        best = result["best_baseline"]
        agent_sharpe = result["metrics"][AGENT]["sharpe"]
        best_sharpe = result["metrics"][best]["sharpe"]
        diff = agent_sharpe - best_sharpe
        passed = diff > margin
        checks[split] = {"agent_sharpe": agent_sharpe, "best_baseline": best, "best_baseline_sharpe": best_sharpe,
                         "sharpe_diff": diff, "ci_low": result["sharpe_diff"]["low"],
                         "ci_high": result["sharpe_diff"]["high"], "passed": passed}
        ruined = bool(result["metrics"][AGENT].get("ruined"))
        if ruined:
            passed = False
            reasons.append(f"{split}: the agent hit the ruin stop (equity below env.ruin_fraction of the "
                           "initial cash); it is held flat at that equity for the rest of the split")
        checks[split]["ruined"] = ruined
        checks[split]["passed"] = passed
        if diff <= margin:
            reasons.append(f"{split}: agent Sharpe {agent_sharpe:.3f} does not beat {best} {best_sharpe:.3f} "
                           f"by more than the margin {margin:g} (difference {diff:+.3f})")
    return {"status": "promoted" if not reasons else "not_promoted", "margin": margin, "checks": checks,
            "reasons": reasons}


def evaluation_rows(evaluation: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for split in SPLITS:
        result = evaluation[split]
        for name, metrics in result["metrics"].items():
            row: dict[str, Any] = {"split": split, "policy": name, "best_baseline": name == result["best_baseline"]}
            row.update({key: metrics[key] for key in METRIC_NAMES})
            rows.append(row)
    return rows


def write_evaluation(run_dir: Path, evaluation: Mapping[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / "evaluation.json", evaluation)
    rows = evaluation_rows(evaluation)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(run_dir) / "evaluation.csv", buffer.getvalue())


def table_rows(evaluation: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows for the rich comparison table (render builds the table)."""
    columns = ["split", "policy", *TABLE_METRICS]
    rows = []
    for row in evaluation_rows(evaluation):
        label = row["policy"] + (" (best baseline)" if row["best_baseline"] else "")
        rows.append([row["split"], label, *(row[key] for key in TABLE_METRICS)])
    return columns, rows
