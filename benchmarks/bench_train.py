"""Training performance: env share of PPO wall time, PPO steps/s with 1 and 2 envs, and the
single-observation latency of the numpy policy vs SB3's `predict`.

    .venv/bin/python benchmarks/bench_train.py [--steps 8192] [--repeats 3] [--rows 5000]

- env share: (a) cProfile of `model.learn` -> cumulative time inside TradingEnv.step / reset over
  the profiled total; (b) without the profiler: time.perf_counter around every TradingEnv.step and
  reset (a thin wrapper) over the wall time of `model.learn`. (b) is the figure that counts,
  (a) cross-checks it (the profiler slows Python calls, torch's included, so the ratios differ).
- steps/s: `model.learn(steps)` wall time, median of repeats; 2 envs use SubprocVecEnv.
- inference: per-observation latency over real env observations, p50 / p99 of 20,000 calls (median of repeats),
  numpy (SB3Policy.act: VecNormalize + MLP + weight) vs SB3 `predict(deterministic=True)`.

    .venv/bin/python -m benchmarks --only train   # PPO on TradingEnv vs PPO on gym-anytrading

PPO's time is the torch update (10 epochs of minibatch SGD) and the policy forward in collection;
the env is a rounding error (~1-2%), so a second env process adds little on 2 shared cores.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coin_cli.config import load_settings
from coin_cli.data.bootstrap import generate_candles
from coin_cli.pipelines import train_env
from coin_cli.pipelines.splits import Span

NAME = "train"
TITLE = "4. Training: SB3 PPO on TradingEnv vs on gym-anytrading"
ORDER = 40


class StepTimer:
    """Accumulates the wall time spent inside TradingEnv.step / reset (patched on the instance
    of this benchmark only; the project code is not modified)."""

    total = 0.0

    @classmethod
    def wrap(cls, env):
        inner = env.unwrapped
        step, reset = inner.step, inner.reset

        def timed_step(action):
            t0 = time.perf_counter()
            out = step(action)
            cls.total += time.perf_counter() - t0
            return out

        def timed_reset(**kwargs):
            t0 = time.perf_counter()
            out = reset(**kwargs)
            cls.total += time.perf_counter() - t0
            return out

        inner.step, inner.reset = timed_step, timed_reset
        return env


def build(settings, dataset, n_envs: int, steps: int):
    from coin_cli.agents.sb3 import build_model

    span = Span(dataset.first_valid, len(dataset.features) - 1)
    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"n_envs": n_envs})})
    venv = train_env.make_train_vec_env(settings, dataset, span, seed=7)
    return build_model("ppo", venv, seed=7, timesteps=steps, n_envs=n_envs), venv


def env_share(settings, dataset, steps: int) -> dict[str, float]:
    model, venv = build(settings, dataset, 1, steps)
    for env in venv.venv.envs if hasattr(venv, "venv") else venv.envs:
        StepTimer.wrap(env)
    StepTimer.total = 0.0
    t0 = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - t0
    timed = StepTimer.total / wall
    venv.close()

    model, venv = build(settings, dataset, 1, steps)
    profiler = cProfile.Profile()
    profiler.enable()
    model.learn(steps)
    profiler.disable()
    venv.close()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    env_time = 0.0
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.endswith("trading_env.py") and name in ("step", "reset"):
            env_time += cumulative
    return {"timed_share": timed, "profiled_share": env_time / total, "wall_s": wall}


def steps_per_second(settings, dataset, n_envs: int, steps: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        model, venv = build(settings, dataset, n_envs, steps)
        t0 = time.perf_counter()
        model.learn(steps)
        rates.append(steps / (time.perf_counter() - t0))
        venv.close()
    return statistics.median(rates)


def inference(settings, dataset, calls: int, repeats: int) -> dict[str, float]:
    from coin_cli.agents.policy import PolicyInput
    from coin_cli.agents.sb3 import SB3Policy
    from coin_cli.agents.sb3_numpy import export_policy

    model, venv = build(settings, dataset, 1, 2048)
    model.learn(2048)
    net = export_policy(model, venv)
    net.spec["weights"] = train_env.action_weights(settings)
    policy = SB3Policy(net, feature_hash="bench", promoted=True)
    env = train_env.make_env(settings, dataset, Span(dataset.first_valid, len(dataset.features) - 1), mode="eval")
    obs, _ = env.reset()
    observations = []
    for _ in range(min(calls, 2000)):
        observations.append(obs)
        obs, _, term, trunc, _ = env.step_weight(0.5)
        if term or trunc:
            obs, _ = env.reset()
    inputs = [PolicyInput(features={}, observation=o) for o in observations]

    def lat(fn, items) -> list[float]:
        out = []
        for i in range(calls):
            item = items[i % len(items)]
            t0 = time.perf_counter()
            fn(item)
            out.append(time.perf_counter() - t0)
        return out

    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(xs) * 1e6, q))

    normed = [venv.normalize_obs(o[None])[0] for o in observations]
    sb3_predict = lambda o: model.predict(o, deterministic=True)  # noqa: E731
    lat(policy.act, inputs[:200])  # warm-up
    lat(sb3_predict, normed[:200])
    result: dict[str, list[float]] = {"numpy_p50_us": [], "numpy_p99_us": [], "sb3_p50_us": [], "sb3_p99_us": []}
    for _ in range(repeats):  # interleaved repeats; the median p99 resists bursts of load from other processes
        numpy_lat = lat(policy.act, inputs)
        sb3_lat = lat(sb3_predict, normed[: max(1, calls // 10)] * 10)
        result["numpy_p50_us"].append(pct(numpy_lat, 50))
        result["numpy_p99_us"].append(pct(numpy_lat, 99))
        result["sb3_p50_us"].append(pct(sb3_lat, 50))
        result["sb3_p99_us"].append(pct(sb3_lat, 99))
    venv.close()
    return {key: statistics.median(values) for key, values in result.items()}


def _ppo_rate(make: Any, steps: int) -> float:
    model, venv = make()
    started = time.perf_counter()
    model.learn(steps)
    rate = steps / (time.perf_counter() - started)
    venv.close()
    return rate


def _anytrading_ppo(frame: Any, steps: int) -> Any:
    """PPO with coin's PPO hyperparameters for this budget on stocks-v0 (window 16) over the same bars."""
    import gym_anytrading  # noqa: F401
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from coin_cli.agents.sb3 import hyperparameters

    df = frame.rename(columns={"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"})
    venv = DummyVecEnv([lambda: gym.make("stocks-v0", df=df, window_size=16, frame_bound=(16, len(df)))])
    model = PPO("MlpPolicy", venv, seed=7, device="cpu", verbose=0, **hyperparameters("ppo", steps, 1))
    return model, venv


def run_benchmark(ctx: Any) -> list[Any]:
    import torch

    torch.set_num_threads(1)
    steps = ctx.size(8192, 2048)
    settings = load_settings(None, env={})
    frame = generate_candles(5000, "1h", 7)
    dataset = train_env.prepare_dataset(settings, frame)
    cmd = "python -m benchmarks --only train  (coin alone: .venv/bin/python benchmarks/bench_train.py)"
    contenders = {"coin": lambda: _ppo_rate(lambda: build(settings, dataset, 1, steps), steps)}
    reason = None
    try:
        _anytrading_ppo(frame, steps)[1].close()
        contenders["anytrading"] = lambda: _ppo_rate(lambda: _anytrading_ppo(frame, steps), steps)
    except ImportError as exc:
        reason = f"gym-anytrading not installed ({exc})"
    rounds = ctx.rounds(contenders, repeats=ctx.repeats(3, 1), warmup=not ctx.quick)
    label = f"PPO steps/s, 1 env, {steps:,} steps (torch 1 thread)"
    figs = []
    if reason:
        figs.append(ctx.unavailable(label, "PPO on gym-anytrading stocks-v0", reason, cmd))
    else:
        figs.append(ctx.figure(label, rounds, "coin", unit="/s", higher_is_better=True,
                               peer="PPO on gym-anytrading stocks-v0", peer_key="anytrading", command=cmd,
                               note="same PPO hyperparameters; coin's obs 146 floats + VecNormalize, "
                                    "anytrading's 16x2"))
    load0 = os.getloadavg()[0]
    share = env_share(settings, dataset, steps)
    figs.append(ctx.figure("env share of PPO wall time (perf_counter around every step/reset)", None,
                           value=share["timed_share"] * 100, unit="%", goal=("<=", 10.0), command=cmd,
                           note=f"{share['profiled_share'] * 100:.1f}% under cProfile"))
    lat = inference(settings, dataset, ctx.size(20_000, 5_000), ctx.repeats(3, 1))
    figs.append(ctx.figure("numpy policy inference per observation (SB3Policy.act), p99", None,
                           value=lat["numpy_p99_us"], unit="us", goal=("<=", 50.0), peer="SB3 predict p99",
                           peer_value=lat["sb3_p99_us"], command=cmd,
                           note=f"p50 {lat['numpy_p50_us']:.1f} µs vs predict {lat['sb3_p50_us']:.0f} µs"))
    for fig in figs[-2:]:
        fig.load = (load0, os.getloadavg()[0])
    return figs


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = load_settings(None, env={})
    dataset = train_env.prepare_dataset(settings, generate_candles(args.rows, "1h", 7))
    obs_size = dataset.features.shape[1] * settings.env.lookback + 2
    print(f"PPO MlpPolicy (64x64 tanh), obs {obs_size} floats, {args.rows} bootstrap candles, torch threads 1")

    share = env_share(settings, dataset, args.steps)
    print(f"env share of PPO wall time: {share['timed_share'] * 100:.1f}% timed "
          f"({share['wall_s']:.1f} s for {args.steps} steps), {share['profiled_share'] * 100:.1f}% under cProfile")
    for n_envs in (1, 2):
        rate = steps_per_second(settings, dataset, n_envs, args.steps, args.repeats)
        print(f"PPO steps/s, {n_envs} env{'s' if n_envs > 1 else ''}: {rate:,.0f} (median of {args.repeats})")
    lat = inference(settings, dataset, args.calls, args.repeats)
    print(f"inference per observation: numpy p50 {lat['numpy_p50_us']:.1f} us, p99 {lat['numpy_p99_us']:.1f} us; "
          f"SB3 predict p50 {lat['sb3_p50_us']:.1f} us, p99 {lat['sb3_p99_us']:.1f} us "
          f"(x{lat['sb3_p50_us'] / lat['numpy_p50_us']:.0f} at p50; medians of {args.repeats} x {args.calls} calls)")


if __name__ == "__main__":
    main()
