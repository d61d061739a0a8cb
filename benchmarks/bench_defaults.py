"""Which env defaults let an agent survive costs (issue 17): old defaults vs candidates.

    .venv/bin/python benchmarks/bench_defaults.py [--seeds 1 2 3] [--timesteps 10000] [--out DIR]
                                                  [--shared ../shared/data]

For every dataset (the three real files in ../shared/data, imported with `coin data import`, and
bootstrap candles) x configuration x seed, runs the real `coin train --json` (PPO) and reads the
agent's and the baselines' validation/test Sharpe, return, turnover and fees from its summary.
A configuration "survives" a run when, after fees, the agent beats Flat on validation (Sharpe > 0,
Flat's is 0) AND does not lose to it on test (Sharpe >= 0). The configuration that survives most
often is the new default. Writes results.json, results.csv and a figure (survival count and median
test Sharpe per configuration) into --out; prints the tables as markdown.

Reads ../shared/data directly (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
COIN = [sys.executable, "-m", "coin_cli"]

DATASETS = {  # name -> (file or None for bootstrap, symbol, interval, extra env)
    "BTCUSDT 5m": ("binance_BTCUSDT_5m.csv", "BTCUSDT", "5m", {}),
    "ETHUSDT 5m": ("binance_ETHUSDT_5m.csv", "ETHUSDT", "5m", {}),
    "ETCBTC 1m": ("bittrex_ETCBTC_1m.csv", "ETCBTC", "1m", {
        "COIN_ENV__TICK_SIZE": "0.00000001", "COIN_ENV__LOT_STEP": "0.01", "COIN_ENV__MIN_QTY": "0.01",
        "COIN_ENV__MIN_NOTIONAL": "0.0001", "COIN_ENV__INITIAL_CASH": "1.0"}),
    "bootstrap 1h": (None, "BTCUSDT", "1h", {}),
}

CONFIGS = {  # name -> env overrides (everything else: the built-in defaults of this checkout)
    "old (continuous, log_return, no band)": {
        "COIN_ENV__ACTION": "continuous", "COIN_ENV__REWARD": "log_return", "COIN_ENV__TRADE_BAND": "0"},
    "continuous, band 0.1, turnover penalty": {
        "COIN_ENV__ACTION": "continuous", "COIN_ENV__REWARD": "log_return_turnover_penalty",
        "COIN_ENV__TRADE_BAND": "0.1"},
    "levels [0, 0.5, 1], band 0.1, log_return": {
        "COIN_ENV__ACTION": "discrete", "COIN_ENV__DISCRETE_LEVELS": "[0, 0.5, 1]", "COIN_ENV__REWARD": "log_return",
        "COIN_ENV__TRADE_BAND": "0.1"},
    "levels [0, 0.5, 1], band 0.1, turnover penalty": {
        "COIN_ENV__ACTION": "discrete", "COIN_ENV__DISCRETE_LEVELS": "[0, 0.5, 1]",
        "COIN_ENV__REWARD": "log_return_turnover_penalty", "COIN_ENV__TRADE_BAND": "0.1"},
    "levels [0, 1], band 0.1, turnover penalty 0.01": {
        "COIN_ENV__ACTION": "discrete", "COIN_ENV__DISCRETE_LEVELS": "[0, 1]",
        "COIN_ENV__REWARD": "log_return_turnover_penalty", "COIN_ENV__REWARD_COEF": "0.01",
        "COIN_ENV__TRADE_BAND": "0.1"},
}
POLICIES = ("agent", "voltarget", "buyhold", "flat")


def coin(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("COIN_")}
    full.update(env)
    return subprocess.run([*COIN, *args], cwd=cwd, env=full, capture_output=True, text=True, check=False)


def prepare(work: Path, name: str, shared: Path) -> None:
    file, symbol, interval, _ = DATASETS[name]
    if file is None:
        result = coin(["data", "bootstrap", "--symbol", symbol, "--interval", interval, "--rows", "20000",
                       "--seed", "7"], work, {})
    else:
        result = coin(["data", "import", str(shared / file), "--symbol", symbol, "--interval", interval], work, {})
    if result.returncode != 0:
        raise SystemExit(f"{name}: {result.stderr}")


def one_run(work: Path, dataset: str, config: str, seed: int, timesteps: int) -> dict:
    _, symbol, interval, extra = DATASETS[dataset]
    env = {**extra, **CONFIGS[config], "COIN_TRAIN__EVAL_FREQ": str(max(1, timesteps // 2))}
    started = time.perf_counter()
    result = coin(["train", "--json", "--symbol", symbol, "--interval", interval, "--timesteps", str(timesteps),
                   "--seed", str(seed)], work, env)
    if result.returncode != 0:
        raise SystemExit(f"{dataset} / {config} / {seed}: exit {result.returncode}: {result.stderr[-2000:]}")
    summary = json.loads(result.stdout)
    row = {"dataset": dataset, "config": config, "seed": seed, "timesteps": timesteps, "status": summary["status"],
           "wall_s": round(time.perf_counter() - started, 1)}
    for split in ("val", "test"):
        metrics = summary["evaluation"][split]["metrics"]
        for policy in POLICIES:
            for key in ("sharpe", "total_return", "turnover", "fees"):
                row[f"{split}.{policy}.{key}"] = metrics[policy][key]
    row["survives"] = row["val.agent.sharpe"] > 0.0 and row["test.agent.sharpe"] >= 0.0
    return row


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for config in CONFIGS:
        mine = [r for r in rows if r["config"] == config]
        if not mine:
            continue
        out.append({
            "config": config, "runs": len(mine), "survives": sum(r["survives"] for r in mine),
            "promoted": sum(r["status"] == "promoted" for r in mine),
            "median val Sharpe": statistics.median(r["val.agent.sharpe"] for r in mine),
            "median test Sharpe": statistics.median(r["test.agent.sharpe"] for r in mine),
            "median test return": statistics.median(r["test.agent.total_return"] for r in mine),
            "median test turnover": statistics.median(r["test.agent.turnover"] for r in mine),
            "median test fees / initial": statistics.median(r["test.agent.fees"] for r in mine),
        })
    return out


def figure(summary: list[dict], rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [s["config"] for s in summary]
    ax1.barh(names, [s["survives"] / s["runs"] for s in summary], color="tab:green")
    ax1.set_xlabel("share of runs: val Sharpe > Flat and test Sharpe >= Flat (after fees)")
    ax1.set_xlim(0, 1)
    for i, config in enumerate(names):
        values = [r["test.agent.sharpe"] for r in rows if r["config"] == config]
        ax2.scatter(values, [i] * len(values), alpha=0.6)
    for base, colour in (("voltarget", "tab:orange"), ("buyhold", "tab:blue")):
        ax2.axvline(statistics.median(r[f"test.{base}.sharpe"] for r in rows), ls="--", color=colour,
                    label=f"{base} (median test Sharpe)")
    ax2.axvline(0.0, color="black", lw=0.8, label="flat")
    ax2.set_yticks(range(len(names)), [""] * len(names))
    ax2.set_xlabel("agent test Sharpe per run (all datasets and seeds)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="names from CONFIGS")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the folder of the three real files")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "studies" / "issue17")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    partial = args.out / "results.json"
    with tempfile.TemporaryDirectory(prefix="coin-defaults-") as tmp:
        for dataset in args.datasets:
            work = Path(tmp) / dataset.replace(" ", "_")
            work.mkdir()
            prepare(work, dataset, args.shared)
            for seed in args.seeds:
                for config in args.configs:
                    rows.append(one_run(work, dataset, config, seed, args.timesteps))
                    print(f"{dataset} | {config} | seed {seed}: val {rows[-1]['val.agent.sharpe']:+.2f} "
                          f"test {rows[-1]['test.agent.sharpe']:+.2f} turnover {rows[-1]['test.agent.turnover']:.1f} "
                          f"({rows[-1]['wall_s']} s)", file=sys.stderr, flush=True)
                    partial.write_text(json.dumps(rows, indent=1))
    summary = summarise(rows)
    with (args.out / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    figure(summary, rows, args.out / "defaults.svg")
    print(markdown(summary))
    per_dataset = []
    for dataset in args.datasets:
        for config in CONFIGS:
            mine = [r for r in rows if r["dataset"] == dataset and r["config"] == config]
            if mine:
                per_dataset.append({
                    "dataset": dataset, "config": config, "survives": f"{sum(r['survives'] for r in mine)}/{len(mine)}",
                    "agent test Sharpe (median)": statistics.median(r["test.agent.sharpe"] for r in mine),
                    "voltarget": statistics.median(r["test.voltarget.sharpe"] for r in mine),
                    "buyhold": statistics.median(r["test.buyhold.sharpe"] for r in mine),
                    "agent test turnover": statistics.median(r["test.agent.turnover"] for r in mine),
                    "agent test fees": statistics.median(r["test.agent.fees"] for r in mine),
                    "agent test return": statistics.median(r["test.agent.total_return"] for r in mine),
                })
    print()
    print(markdown(per_dataset))
    (args.out / "per_dataset.json").write_text(json.dumps(per_dataset, indent=1))


if __name__ == "__main__":
    main()
