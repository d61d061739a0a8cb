"""TradingEnv (gymnasium), the one execution model, observation, reward, recorder, rollout.

`TradingEnv` is imported lazily (it pulls in gymnasium) so that the runtime can use the execution
model and the observation builder without it."""

from __future__ import annotations

from typing import Any

__all__ = ["TradingEnv", "make_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from coin_cli.env import trading_env

        return getattr(trading_env, name)
    raise AttributeError(f"module 'coin_cli.env' has no attribute {name!r}")
