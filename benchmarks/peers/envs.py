"""Trading environments a user would pick instead of TradingEnv, built on the same candles.

- gym-anytrading `stocks-v0` (unwrapped: no gymnasium wrappers in the timing), window 16, episodes
  of 2048 bars (frame_bound), discrete sell/buy actions.
- gym-trading-env `TradingEnv`, positions [0, 1], the same fee, episodes of 2048 bars
  (max_episode_duration), its default dynamic features, 9 static "feature_" columns (coin's features).
Each factory returns the env, or a string saying why it cannot be built here.
"""

from __future__ import annotations

from typing import Any

EPISODE = 2048
WINDOW = 16


def anytrading(frame: Any) -> Any:
    try:
        import gym_anytrading  # noqa: F401  (registers stocks-v0)
        import gymnasium as gym
    except ImportError as exc:
        return f"gym-anytrading not installed ({exc}); pip install -e '.[bench]'"
    df = frame.rename(columns={"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"})
    return gym.make("stocks-v0", df=df, window_size=WINDOW, frame_bound=(WINDOW, WINDOW + EPISODE)).unwrapped


def trading_env(frame: Any, features: Any, fee: float) -> Any:
    import warnings

    try:
        # gym_trading_env's import runs warnings.filterwarnings("error") for the whole process
        # (every later DeprecationWarning would raise); catch_warnings puts the filters back
        with warnings.catch_warnings():
            from gym_trading_env.environments import TradingEnv
    except ImportError as exc:
        return f"gym-trading-env not installed ({exc}); pip install -e '.[bench]'"
    import pandas as pd

    df = frame[["open", "high", "low", "close", "volume"]].copy()
    df.index = pd.to_datetime(frame["open_time"], unit="ms")
    for name in features.columns:
        df[f"feature_{name}"] = features[name].fillna(0.0).to_numpy()
    return TradingEnv(df, positions=[0, 1], trading_fees=fee, max_episode_duration=EPISODE, verbose=0,
                      render_mode=None)
