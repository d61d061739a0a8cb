"""TradingEnv: one symbol, bars of precomputed features, the one execution model.

A step is one bar: the agent sees the features up to bar t's close and its position, sets a target
weight, the execution model fills it at bar t+1's open, and the equity is marked at bar t+1's
close. Training episodes start at a random bar and last `episode_length` steps; evaluation runs
the whole range from the first bar with a full window of valid features. The episode terminates
on ruin (equity < ruin_fraction * initial cash) and is truncated at the end of the range.

Speed: candles and features are turned into Python lists / one float32 matrix at construction;
a step does scalar arithmetic and copies one window into a fresh observation.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from coin_cli.config import EnvConfig, Settings
from coin_cli.env.drawdown import peak_and_drawdown
from coin_cli.env.execution import ExecutionModel, ExecutionParams, action_levels
from coin_cli.env.observation import ObservationBuilder
from coin_cli.env.recorder import Recorder
from coin_cli.env.reward import Reward
from coin_cli.features.spec import FeatureSpec

Mode = Literal["train", "eval"]


class TradingEnv(gym.Env):
    """`TradingEnv(candles, features, config, mode="train"|"eval", spec=None, start=0, end=None)`.

    candles: table with `open_time`, `open`, `close` (DataFrame or mapping of arrays);
    features: the matching rows of `compute_offline` (DataFrame, or an array in `spec.names` order);
    config: `Settings` or its `env` section; [start, end): the bars whose close the agent acts on
    (the observation window may reach back before `start`).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, candles: Any, features: Any, config: Settings | EnvConfig | None = None, *,
                 mode: Mode = "train", spec: FeatureSpec | None = None, start: int = 0, end: int | None = None,
                 record: bool = False):
        super().__init__()
        env_cfg = getattr(config, "env", config) or EnvConfig()
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        self.config: EnvConfig = env_cfg
        self.mode = mode
        self.feature_spec = spec or FeatureSpec.default()
        self.execution = ExecutionModel(ExecutionParams.from_settings(env_cfg))

        self._open_time = np.asarray(candles["open_time"]).astype(np.int64).tolist()
        self._open = np.asarray(candles["open"], dtype=np.float64).tolist()
        self._close = np.asarray(candles["close"], dtype=np.float64).tolist()
        names = list(features.columns) if hasattr(features, "columns") else self.feature_spec.names
        raw = np.asarray(features, dtype=np.float64)
        n = len(self._close)
        if raw.ndim != 2 or raw.shape[0] != n or raw.shape[1] != len(names):
            raise ValueError(f"features must be {n} rows x {len(names)} columns, got shape {raw.shape}")
        self.feature_names = names
        self._raw_features = raw
        self._feature_lists: list[list[float]] | None = None
        self.builder = ObservationBuilder(names, env_cfg.lookback, self.feature_spec)
        self._obs_rows = self.builder.transform(raw)  # (n, F) float32, precomputed once
        # flat copy with two spare floats, so an observation is ONE slice copy (then the state is set)
        self._flat = np.concatenate([self._obs_rows.reshape(-1), np.zeros(2, dtype=np.float32)])

        lookback = env_cfg.lookback
        valid = np.isfinite(raw).all(axis=1)
        valid_from = int(np.argmax(valid)) if valid.any() else n
        self.first_bar = max(int(start), valid_from + lookback - 1)
        self.stop_bar = min(n if end is None else int(end), n - 1)  # decisions on bars [first, stop)
        if self.stop_bar - self.first_bar < 1:
            raise ValueError(f"no bar to act on: {n} candles, features valid from row {valid_from}, "
                             f"lookback {lookback}, range [{start}, {end if end is not None else n})")

        self._initial = float(env_cfg.initial_cash)
        self._ruin = env_cfg.ruin_fraction * self._initial
        self._reward = Reward(env_cfg)  # env.reward, its coefficient and the penalties
        self._plain_reward = self._reward.plain
        self._execute = self.execution.execute
        self._episode_length = env_cfg.episode_length
        low = self.execution.min_weight
        if env_cfg.action == "discrete":
            self._levels = action_levels(env_cfg.discrete_levels, low)
            self.action_space: spaces.Space = spaces.Discrete(len(self._levels))
        else:
            self._levels = None
            self.action_space = spaces.Box(low=low, high=1.0, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(low=-self.builder.clip, high=self.builder.clip,
                                            shape=(self.builder.size,), dtype=np.float32)
        self._w = self.builder.window_size
        self._row = self.builder.n_features
        self.recorder: Recorder | None = Recorder() if record else None
        self._t = self.first_bar
        self._end = self.stop_bar
        self._set_book(self._initial, 0.0)

    # -- gymnasium API --------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        first, stop = self.first_bar, self.stop_bar
        if self.mode == "train" and stop - first > self._episode_length:
            start = first + int(self.np_random.integers(0, stop - first - self._episode_length + 1))
            self._end = start + self._episode_length
        else:
            start, self._end = first, stop
        if options and "start" in options:  # an explicit start bar (evaluation from a given time)
            start = min(max(int(options["start"]), first), stop - 1)
        self._t = start
        self._set_book(self._initial, 0.0)
        self._reward.reset()
        if self.recorder is not None:
            self.recorder.clear()
        return self._observe(start, 0.0, 0.0), {"bar": start, "open_time": self._open_time[start],
                                                "equity": self._initial, "position": 0.0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        levels = self._levels
        if levels is not None:
            weight = levels[int(action)]
        else:
            try:
                weight = float(action[0])
            except (TypeError, IndexError):
                weight = float(action)
        return self.step_weight(weight, action)

    def step_weight(self, target: float, action: Any = None) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One bar with a target weight given directly (policies that speak weights, replay parity)."""
        t = self._t
        nxt = t + 1
        prev_equity = self._equity
        fill, cash, qty = self._execute(target, self._cash, self._qty, self._open[nxt])
        if fill is None:
            fee = traded = notional = fill_price = 0.0
        else:
            traded, fill_price, notional, fee = fill
            self._fees += fee
            self._trades += 1
            self._turnover += notional
        price = self._close[nxt]
        equity = cash + qty * price
        self._peak, drawdown = peak_and_drawdown(equity, self._peak)
        if self._plain_reward and equity > 0.0 and prev_equity > 0.0:
            reward = math.log(equity / prev_equity)
        else:
            reward = self._reward(prev_equity, equity, drawdown, notional)
        self._cash, self._qty, self._equity = cash, qty, equity
        self._t = nxt
        self._reward_sum += reward
        position = qty * price / equity if equity > 0.0 else 0.0
        terminated = equity < self._ruin
        truncated = not terminated and nxt >= self._end
        if self.recorder is not None:
            self.recorder.record(self._steps, self._open_time[nxt], price, _plain(action, target), target,
                                 position, qty, cash, equity, fee, traded, fill_price, reward)
        self._steps += 1
        # the observation: the window ending at bar nxt, then the position state (see observation.py)
        w = self._w
        start = (nxt + 1) * self._row - w
        obs = self._flat[start: start + w + 2].copy()
        obs[w] = position if -10.0 <= position <= 10.0 else math.copysign(10.0, position)
        obs[w + 1] = drawdown if drawdown <= 1.0 else 1.0
        info = {"bar": nxt, "price": price, "target": target, "position": position, "cash": cash,
                "equity": equity, "fee": fee, "traded_qty": traded}
        return obs, reward, terminated, truncated, info

    # -- state and helpers ----------------------------------------------------------------------

    def _set_book(self, cash: float, qty: float) -> None:
        self._cash, self._qty = cash, qty
        self._equity = self._peak = cash + qty * self._close[self._t]
        self._fees = self._turnover = self._reward_sum = 0.0
        self._trades = self._steps = 0

    def _observe(self, t: int, position: float, drawdown: float) -> np.ndarray:
        w = self._w
        start = (t + 1) * self._row - w
        obs = self._flat[start: start + w + 2].copy()  # 2 spare floats at the end of _flat
        obs[w] = position if -10.0 <= position <= 10.0 else math.copysign(10.0, position)
        obs[w + 1] = drawdown if drawdown <= 1.0 else 1.0
        return obs

    @property
    def bar(self) -> int:
        """The bar whose close the next action is decided on."""
        return self._t

    @property
    def position_weight(self) -> float:
        return self._qty * self._close[self._t] / self._equity if self._equity > 0.0 else 0.0

    @property
    def equity(self) -> float:
        return self._equity

    @property
    def drawdown(self) -> float:
        return peak_and_drawdown(self._equity, self._peak)[1]

    def open_time(self, t: int) -> int:
        return self._open_time[t]

    def feature_row(self, t: int | None = None) -> dict[str, float]:
        """The raw features of bar t (default: the current bar) by name."""
        if self._feature_lists is None:  # Python floats, built once: a rollout asks every bar
            self._feature_lists = self._raw_features.tolist()
        return dict(zip(self.feature_names, self._feature_lists[self._t if t is None else t], strict=True))

    def stats(self) -> dict[str, Any]:
        """Episode totals so far."""
        return {"steps": self._steps, "equity": self._equity, "cash": self._cash, "qty": self._qty,
                "fees": self._fees, "trades": self._trades, "turnover_notional": self._turnover,
                "total_reward": self._reward_sum, "initial_equity": self._initial}


def _plain(action: Any, target: float) -> float:
    """The action as a number for the trace (a Box action is a 1-element array)."""
    if action is None:
        return target
    try:
        return float(action[0])
    except (TypeError, IndexError):
        return float(action)


def make_env(settings: Settings, candles: Any, features: Any | None = None, *, mode: Mode = "eval",
             spec: FeatureSpec | None = None, **kwargs: Any) -> TradingEnv:
    """A TradingEnv from settings; computes the features when they are not given."""
    spec = spec or FeatureSpec.from_config(settings.features)
    if features is None:
        from coin_cli.features import compute_offline

        features = compute_offline(candles, spec)
    return TradingEnv(candles, features, settings, mode=mode, spec=spec, **kwargs)
