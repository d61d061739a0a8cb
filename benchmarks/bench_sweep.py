"""`coin train --sweep` throughput and Ray's overhead per trial (issue 17).

    .venv/bin/python benchmarks/bench_sweep.py [--steps 20000] [--trials 3] [--small-steps 5000] [--small-trials 4]

All runs are the real `coin` command on bootstrap candles (BTCUSDT 1h, 20,000 rows), PPO, one
validation evaluation at the end of each trial (no ASHA stop, so every trial does the same work).

- Overhead: sweeps of 1 and of `--trials` trials of `--steps` steps, 1 concurrent trial. What a
  sweep spends outside the trials' `train()` (their manifests' duration_s) and the head's test
  evaluation of the best trial is Ray's: ray.init, the trial workers' start-up and imports, the
  candles through the object store, reports and checkpoint copies, Tune's bookkeeping. The
  difference between the two sweeps is what each further trial costs (`per_trial`); the rest of
  the 1-trial sweep's is what a sweep pays once (`once`). The target (< 10% of a 20,000-step
  trial) is about `per_trial`; `all_in` spreads `once` over the `--trials` trials too.
  Beside it, end to end: the sweep's wall time per trial over one plain `coin train` of the
  same steps (which pays its own interpreter and torch start-up).
- Throughput: `--small-trials` trials of `--small-steps` steps with 1 and with 2 concurrent
  trials: trials per hour from the sweep's wall time.

The machine is shared: read the figures as "about"; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COIN = [sys.executable, "-m", "coin_cli"]


def coin(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COIN_")}
    started = time.perf_counter()
    result = subprocess.run([*COIN, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"coin {' '.join(args)}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return result, wall


def space(work: Path, steps: int, trials: int) -> Path:
    path = work / f"space-{steps}-{trials}.yaml"
    path.write_text(f"trials: {trials}\nfixed:\n  train.timesteps: {steps}\n  train.eval_freq: {steps + 1}\n"
                    "space:\n  train.seed: {int: [1, 100000]}\n  algo.learning_rate: {loguniform: [0.0001, 0.001]}\n")
    return path


def sweep(work: Path, steps: int, trials: int, concurrent: int) -> dict:
    result, wall = coin(["train", "--sweep", str(space(work, steps, trials)), "--max-concurrent", str(concurrent),
                         "--json"], work)
    summary = json.loads(result.stdout)
    folder = work / "runs" / summary["run_id"]
    train_s = []
    for trial in summary["trials"]:
        manifest = json.loads((folder / trial["folder"] / "train_manifest.json").read_text())
        train_s.append(float(manifest["duration_s"]))
    test_s = float(json.loads((folder / summary["best_folder"] / "train_manifest.json").read_text())
                   .get("test_evaluation_s") or 0.0)
    return {"wall_s": wall, "sweep_s": float(summary["duration_s"]), "train_s": train_s, "test_s": test_s,
            "trials": len(summary["trials"]), "concurrent": concurrent, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--small-steps", type=int, default=5_000)
    parser.add_argument("--small-trials", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coin-bench-sweep-") as tmp:
        work = Path(tmp)
        coin(["data", "bootstrap", "--symbol", "BTCUSDT", "--interval", "1h", "--rows", "20000"], work)
        _, single = coin(["train", "--timesteps", str(args.steps), "--json",
                          "--seed", "1"], work)
        one = sweep(work, args.steps, 1, 1)
        big = sweep(work, args.steps, args.trials, 1)
        small = {k: sweep(work, args.small_steps, args.small_trials, k) for k in (1, 2)}
    trial = statistics.median(big["train_s"])
    outside = {n: r["wall_s"] - sum(r["train_s"]) - r["test_s"] for n, r in ((1, one), (args.trials, big))}
    per_trial = (outside[args.trials] - outside[1]) / (args.trials - 1)
    once = outside[1] - per_trial
    all_in = outside[args.trials] / args.trials
    results = {
        "single_coin_train_wall_s": round(single, 1),
        "sweep_1": one,
        "sweep": big,
        "median_trial_train_s": trial,
        "ray_per_trial_s": round(per_trial, 2),
        "ray_per_trial_share": round(per_trial / trial, 3),
        "ray_once_per_sweep_s": round(once, 2),
        "ray_all_in_per_trial_s": round(all_in, 2),
        "ray_all_in_share": round(all_in / trial, 3),
        "sweep_wall_per_trial_over_single_train": round(big["wall_s"] / big["trials"] / single, 3),
        "throughput": {str(k): {"trials_per_hour": round(v["trials"] / v["wall_s"] * 3600, 1), **v}
                       for k, v in small.items()},
    }
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
