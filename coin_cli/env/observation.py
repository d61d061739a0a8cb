"""The observation the agent sees, built the same way in training (TradingEnv) and in trading
(the runtime, through ObservationWindow), so a model gets identical vectors in both.

Layout (float32): the last `lookback` feature rows, oldest first, each feature scaled
`(value - centre) * scale` (FeatureSpec's observation scale), clipped to +-OBS_CLIP, NaN -> 0;
then the position state: the position's weight in equity and the drawdown from the equity peak.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from coin_cli.features.spec import OBS_CLIP, FeatureSpec

STATE_NAMES = ("position_weight", "drawdown")


class ObservationBuilder:
    def __init__(self, feature_names: Sequence[str], lookback: int, spec: FeatureSpec | None = None):
        spec = spec or FeatureSpec.default()
        by_name = {f.name: f for f in spec.features}
        unknown = [n for n in feature_names if n not in by_name]
        if unknown:
            raise ValueError(f"features {', '.join(unknown)} are not in the feature spec ({', '.join(by_name)})")
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {lookback}")
        self.feature_names = list(feature_names)
        self.lookback = int(lookback)
        self.n_features = len(self.feature_names)
        self.window_size = self.lookback * self.n_features
        self.size = self.window_size + len(STATE_NAMES)
        self.clip = OBS_CLIP
        self._scale = np.array([by_name[n].obs_scale[0] for n in self.feature_names])
        self._centre = np.array([by_name[n].obs_scale[1] for n in self.feature_names])

    def names(self) -> list[str]:
        """One label per vector entry, e.g. `ret_1[t-15]` ... `ret_1[t]`, then the state names."""
        lags = [f"[t-{k}]" if k else "[t]" for k in range(self.lookback - 1, -1, -1)]
        return [f"{name}{lag}" for lag in lags for name in self.feature_names] + list(STATE_NAMES)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Raw feature rows (n, n_features) -> scaled, clipped float32 rows (NaN -> 0)."""
        scaled = (np.asarray(features, dtype=np.float64) - self._centre) * self._scale
        np.clip(scaled, -self.clip, self.clip, out=scaled)
        return np.nan_to_num(scaled, nan=0.0).astype(np.float32)

    def build(self, window: np.ndarray, position_weight: float, drawdown: float) -> np.ndarray:
        """A fresh observation vector from transformed rows (lookback, n_features) and the state."""
        obs = np.empty(self.size, dtype=np.float32)
        obs[: self.window_size] = window.reshape(-1)
        obs[self.window_size] = min(max(position_weight, -self.clip), self.clip)
        obs[self.window_size + 1] = min(max(drawdown, 0.0), 1.0)
        return obs

    def observe(self, raw_window: np.ndarray, position_weight: float, drawdown: float) -> np.ndarray:
        """From raw feature rows (lookback, n_features): transform + build."""
        return self.build(self.transform(raw_window), position_weight, drawdown)


class ObservationWindow:
    """The runtime's side: push each bar's online features, ask for the observation."""

    def __init__(self, builder: ObservationBuilder):
        self.builder = builder
        self._rows: deque[list[float]] = deque(maxlen=builder.lookback)

    def push(self, features: Mapping[str, float]) -> None:
        self._rows.append([float(features[name]) for name in self.builder.feature_names])

    @property
    def ready(self) -> bool:
        """A full window of bars whose features all have values."""
        return len(self._rows) == self.builder.lookback and bool(np.isfinite(np.array(self._rows)).all())

    def observation(self, position_weight: float, drawdown: float) -> np.ndarray:
        rows = list(self._rows)
        if len(rows) < self.builder.lookback:  # not warm yet: pad with zero rows (the NaN value)
            rows = [[0.0] * self.builder.n_features] * (self.builder.lookback - len(rows)) + rows
        return self.builder.observe(np.array(rows, dtype=np.float64), position_weight, drawdown)
