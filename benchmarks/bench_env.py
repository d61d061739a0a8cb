"""TradingEnv speed: raw step (random actions, precomputed features) and reset.

Targets (issue 4): raw step >= 250k steps/s, reset <= 50 us. Reference measured in the same run:
a minimal numpy gymnasium env (slice a window, one multiply) — the ceiling for a Python env.

    .venv/bin/python benchmarks/bench_env.py [--rows 300000] [--steps 100000] [--repeats 9]
    .venv/bin/python -m benchmarks --only env        # with the peers: gym-anytrading, gym-trading-env

Why TradingEnv does ~2.5x the minimal env's work per step, and stays there: the execution model
with lot/tick rounding, min-notional and the cash fit, the reward, a fresh observation and an info
dict are the contract (the replay runtime ends with the env's equity to 1e-9 because both call the
same ExecutionModel). The hot path is already flattened: one fused `ExecutionModel.execute`,
tuple-built Fill, one slice copy per observation, Python-float lists; reaching 250k steps/s would
mean dropping work the contract requires.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from coin_cli.config import EnvConfig
from coin_cli.env import TradingEnv
from coin_cli.features import compute_offline

NAME = "env"
TITLE = "1. TradingEnv: raw steps and reset"
ORDER = 10


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


def _rate(env: Any, actions: Any) -> float:
    return run_steps(env, actions)


def _reset_us(env: Any, n: int) -> float:
    timings = []
    for _ in range(n):
        start = time.perf_counter()
        env.reset()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e6


def run_benchmark(ctx: Any) -> list[Any]:
    """Steps/s with pre-drawn random actions (sampling is not the env), every env on the same
    candles and features, episodes of 2048 bars, rounds interleaved; reset time per env."""
    from benchmarks.peers import envs as peers

    rows, steps = ctx.size(100_000, 30_000), ctx.size(60_000, 15_000)
    frame = candles(rows)
    features = compute_offline(frame)
    config = EnvConfig()
    rng = np.random.default_rng(2)
    weights = rng.random((steps, 1)).astype(np.float32)
    sides = rng.integers(0, 2, steps).tolist()
    coin = TradingEnv(frame, features, config, mode="train")
    floor = MinimalNumpyEnv(np.nan_to_num(features.to_numpy(np.float32)))
    contenders = {"coin": lambda: _rate(coin, weights), "floor": lambda: _rate(floor, weights)}
    others = {"gym-anytrading stocks-v0": peers.anytrading(frame),
              "gym-trading-env": peers.trading_env(frame, features, config.fee_bps / 1e4)}
    for name, env in others.items():
        if not isinstance(env, str):
            contenders[name] = lambda env=env: _rate(env, sides)
    cmd = "python -m benchmarks --only env  (coin alone: .venv/bin/python benchmarks/bench_env.py)"
    rounds = ctx.rounds(contenders, repeats=ctx.repeats(5, 3))
    label = f"TradingEnv raw step, random actions, default costs ({rows:,} bars)"
    figs = []
    for name, env in others.items():
        if isinstance(env, str):
            figs.append(ctx.unavailable(label, name, env, cmd))
        else:
            figs.append(ctx.figure(label, rounds, "coin", unit="/s", higher_is_better=True, peer=name,
                                   peer_key=name, command=cmd))
    figs.append(ctx.figure(label, rounds, "coin", unit="/s", higher_is_better=True,
                           peer="minimal numpy env (floor)", peer_key="floor", goal=(">=", 250_000.0), command=cmd,
                           note="the floor: a window slice and one multiply per step"))
    resets = {"coin": lambda: _reset_us(coin, 500)}
    for name, env in others.items():
        if not isinstance(env, str):
            resets[name] = lambda env=env: _reset_us(env, 50)
    reset_rounds = ctx.rounds(resets, repeats=ctx.repeats(5, 3))
    for name in resets:
        if name != "coin":
            figs.append(ctx.figure("reset() (train mode, random start), median", reset_rounds, "coin", unit="us",
                                   peer=name, peer_key=name, goal=("<=", 50.0), command=cmd))
    if len(resets) == 1:
        figs.append(ctx.figure("reset() (train mode, random start), median", reset_rounds, "coin", unit="us",
                               goal=("<=", 50.0), command=cmd))
    return figs


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
