"""Reward: log growth of equity over the bar (net of fees and slippage, which are already out of
the equity), minus optional penalties from config:

    reward = log(equity_t / equity_{t-1}) - drawdown_penalty * drawdown_t
             - turnover_penalty * traded_notional_t / equity_{t-1}

drawdown_t = 1 - equity_t / peak equity so far. With no penalties the rewards of an episode sum to
log(final equity / initial equity).
"""

from __future__ import annotations

import math

RUIN_REWARD = math.log(1e-12)  # equity at or below zero: the worst reward, finite for the learner


def step_reward(prev_equity: float, equity: float, drawdown: float, traded_notional: float,
                drawdown_penalty: float = 0.0, turnover_penalty: float = 0.0) -> float:
    growth = RUIN_REWARD if equity <= 0.0 or prev_equity <= 0.0 else math.log(equity / prev_equity)
    if drawdown_penalty:
        growth -= drawdown_penalty * drawdown
    if turnover_penalty and prev_equity > 0.0:
        growth -= turnover_penalty * traded_notional / prev_equity
    return growth
