"""Run a policy through a TradingEnv for one episode: the trace and its summary. Used by the
probe, by evaluation, and by the replay/env parity test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coin_cli.agents.policy import Policy, PolicyInput
from coin_cli.env.drawdown import peak_and_drawdown
from coin_cli.env.recorder import Recorder

if TYPE_CHECKING:
    from coin_cli.env.trading_env import TradingEnv


@dataclass
class RolloutResult:
    summary: dict[str, Any]
    recorder: Recorder

    @property
    def trace(self) -> dict[str, list[Any]]:
        return self.recorder.to_columns()


def rollout(env: TradingEnv, policy: Policy, *, seed: int | None = None, options: dict[str, Any] | None = None,
            max_steps: int | None = None) -> RolloutResult:
    """Reset `env`, then step it with `policy.act(...)` as the target weight until the episode
    ends (or `max_steps`). The policy sees the current bar's features, the observation and the
    position, exactly what the runtime gives it."""
    if env.recorder is None:
        env.recorder = Recorder()
    obs, info = env.reset(seed=seed, options=options)
    first_time = info["open_time"]
    steps, terminated, truncated = 0, False, False
    peak = env.equity
    max_drawdown = exposure = 0.0
    act, step, feature_row, open_time = policy.act, env.step_weight, env.feature_row, env.open_time
    while not (terminated or truncated) and (max_steps is None or steps < max_steps):
        inp = PolicyInput(feature_row(), obs, env.position_weight, env.equity, env.drawdown, open_time(env.bar))
        obs, _, terminated, truncated, info = step(float(act(inp)))
        steps += 1
        peak, drawdown = peak_and_drawdown(info["equity"], peak)
        if drawdown > max_drawdown:
            max_drawdown = drawdown
        exposure += info["position"]
    stats = env.stats()
    initial = stats["initial_equity"]
    summary = {
        "policy": getattr(policy, "name", type(policy).__name__),
        "steps": steps,
        "first_open_time": first_time,
        "last_open_time": env.open_time(env.bar),
        "initial_equity": initial,
        "final_equity": stats["equity"],
        "total_return": stats["equity"] / initial - 1.0,
        "total_reward": stats["total_reward"],
        "max_drawdown": max_drawdown,
        "trades": stats["trades"],
        "fees": stats["fees"],
        "turnover": stats["turnover_notional"] / initial,
        "exposure": exposure / steps if steps else 0.0,
        "terminated": terminated,
        "truncated": truncated,
    }
    return RolloutResult(summary, env.recorder)
