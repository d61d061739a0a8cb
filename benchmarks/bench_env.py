"""TradingEnv speed: raw step (random actions, precomputed features) and reset.

Targets (issue 4): raw step >= 250k steps/s, reset <= 50 us. Reference measured in the same run:
a minimal numpy gymnasium env (slice a window, one multiply) — the ceiling for a Python env.

    .venv/bin/python benchmarks/bench_env.py [--rows 300000] [--steps 100000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import pandas as pd

from coin_cli.config import EnvConfig
from coin_cli.env import TradingEnv
from coin_cli.features import compute_offline


class MinimalNumpyEnv(gym.Env):
    """The reference: a window slice and a position * return reward, nothing else."""

    def __init__(self, rows: np.ndarray, lookback: int = 16):
        self.rows, self.lookback = rows, lookback
        self.returns = np.zeros(len(rows)).tolist()
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (lookback * rows.shape[1],), np.float32)
        self.action_space = gym.spaces.Box(0, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.i = self.lookback
        return self.rows[: self.lookback].ravel(), {}

    def step(self, action):
        self.i += 1
        i = self.i
        return (self.rows[i - self.lookback: i].ravel(), float(action[0]) * self.returns[i], False,
                i >= len(self.rows) - 1, {})


def candles(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.003, rows)))
    return pd.DataFrame({"open_time": np.arange(rows, dtype=np.int64) * 3_600_000, "open": close,
                         "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": rng.lognormal(3, 1, rows)})


def run_steps(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=1)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    frame = candles(args.rows)
    features = compute_offline(frame)
    rng = np.random.default_rng(2)
    actions = rng.random((args.steps, 1)).astype(np.float32)  # drawn up front: sampling is not the env
    envs = {
        "TradingEnv train (default costs, 2048-bar episodes)": TradingEnv(frame, features, EnvConfig(), mode="train"),
        "TradingEnv eval (no ruin, whole range)": TradingEnv(frame, features, EnvConfig(ruin_fraction=0.0),
                                                             mode="eval"),
        "minimal numpy env (reference)": MinimalNumpyEnv(np.nan_to_num(features.to_numpy(np.float32))),
    }
    # rounds interleave the envs so that each round's ratio compares like with like on a shared,
    # noisy machine; the medians over rounds are reported
    per_round: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, env in envs.items():
            per_round[name].append(run_steps(env, actions))
    ref_name = "minimal numpy env (reference)"
    for name, rates in per_round.items():
        ratios = [rate / ref for rate, ref in zip(rates, per_round[ref_name], strict=True)]
        print(f"{name:55s} {statistics.median(rates):>10,.0f} steps/s  (min {min(rates):,.0f}, max {max(rates):,.0f})"
              f"  {statistics.median(ratios):.2f} x reference")

    env = envs["TradingEnv train (default costs, 2048-bar episodes)"]
    for label, seeded in (("reset()", False), ("reset(seed=i)", True)):
        timings = []
        for i in range(5_000):
            start = time.perf_counter()
            env.reset(seed=i if seeded else None)
            timings.append(time.perf_counter() - start)
        timings.sort()
        median, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
        print(f"{label:14s} median {median * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us")

    start = time.perf_counter()
    TradingEnv(frame, features, EnvConfig(), mode="train")
    print(f"construction on {args.rows:,} bars: {(time.perf_counter() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
