"""Rewards (`env.reward`), all computed from the equity marked at each bar's close, which is
already net of fees and slippage:

- `log_return`: log(equity_t / equity_{t-1}); the rewards of an episode sum to
  log(final / initial equity).
- `log_return_turnover_penalty`: the log return minus `reward_coef` * traded notional_t /
  equity_{t-1} (default coefficient: the fee + slippage rate, so a trade costs the agent twice
  what it costs the equity: an explicit push against overtrading).
- `differential_sharpe`: Moody & Saffell's differential Sharpe ratio of the log returns, the
  first-order change of an exponentially weighted Sharpe ratio with rate eta = `reward_coef`
  (default 0.01); 0 until the moving second moment exceeds the squared mean, clipped to +-10 (the
  first bars of an episode, with moments near zero, would give unbounded values). Its moving
  moments start again at every episode.

Any of them then subtracts the optional penalties `drawdown_penalty` * drawdown_t and
`turnover_penalty` * traded notional_t / equity_{t-1}. Rewards only shape training: evaluation,
selection and promotion use the equity curve (Sharpe after costs).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coin_cli.config import EnvConfig

RUIN_REWARD = math.log(1e-12)  # equity at or below zero: the worst reward, finite for the learner
REWARDS = ("log_return", "differential_sharpe", "log_return_turnover_penalty")
DSR_ETA = 0.01
DSR_CLIP = 10.0  # the first bars of an episode (moments near zero) would give unbounded values


def step_reward(prev_equity: float, equity: float, drawdown: float, traded_notional: float,
                drawdown_penalty: float = 0.0, turnover_penalty: float = 0.0) -> float:
    growth = RUIN_REWARD if equity <= 0.0 or prev_equity <= 0.0 else math.log(equity / prev_equity)
    if drawdown_penalty:
        growth -= drawdown_penalty * drawdown
    if turnover_penalty and prev_equity > 0.0:
        growth -= turnover_penalty * traded_notional / prev_equity
    return growth


def reward_coefficient(cfg: EnvConfig) -> float:
    """`env.reward_coef`, or the chosen reward's default when it is null."""
    if cfg.reward_coef is not None:
        return float(cfg.reward_coef)
    if cfg.reward == "differential_sharpe":
        return DSR_ETA
    if cfg.reward == "log_return_turnover_penalty":
        return (cfg.fee_bps + cfg.slippage_bps) * 1e-4
    return 0.0


class Reward:
    """The reward of `env.reward` with its coefficient and the optional penalties; `reset()` at
    the start of every episode."""

    def __init__(self, cfg: EnvConfig):
        self.kind = cfg.reward
        self.coef = reward_coefficient(cfg)
        self.drawdown_penalty = cfg.drawdown_penalty
        self.turnover_penalty = cfg.turnover_penalty
        if self.kind == "log_return_turnover_penalty":
            self.turnover_penalty += self.coef
        self.plain = self.kind != "differential_sharpe" and not (self.drawdown_penalty or self.turnover_penalty)
        self.reset()

    def reset(self) -> None:
        self._a = 0.0  # moving mean of the log returns
        self._b = 0.0  # moving mean of their squares

    def __call__(self, prev_equity: float, equity: float, drawdown: float, traded_notional: float) -> float:
        if self.kind != "differential_sharpe":
            return step_reward(prev_equity, equity, drawdown, traded_notional, self.drawdown_penalty,
                               self.turnover_penalty)
        r = RUIN_REWARD if equity <= 0.0 or prev_equity <= 0.0 else math.log(equity / prev_equity)
        a, b, eta = self._a, self._b, self.coef
        variance = b - a * a
        reward = (b * (r - a) - 0.5 * a * (r * r - b)) / variance ** 1.5 if variance > 1e-18 else 0.0
        reward = DSR_CLIP if reward > DSR_CLIP else (-DSR_CLIP if reward < -DSR_CLIP else reward)
        self._a = a + eta * (r - a)
        self._b = b + eta * (r * r - b)
        if self.drawdown_penalty:
            reward -= self.drawdown_penalty * drawdown
        if self.turnover_penalty and prev_equity > 0.0:
            reward -= self.turnover_penalty * traded_notional / prev_equity
        return reward
