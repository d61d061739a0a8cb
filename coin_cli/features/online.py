"""Online features: O(1) per closed candle, no re-computation over a window.

The engine keeps the running prefix sums of spec.py and a ring of their last `max_lag` values;
every formula is the twin of the one in offline.py (same operations, same order), which is what
makes the two agree bit for bit. `log` is numpy's here too, for the same reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from coin_cli.errors import DataError
from coin_cli.features.spec import FeatureSpec

_NAN = float("nan")
_KIND_CODE = {"ret": 0, "vol": 1, "rsi": 2, "ma_dist": 3, "volz": 4, "range": 5}


class OnlineFeatureEngine:
    """`update(candle)` with each closed candle in order -> {name: value} (NaN during warm-up)."""

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec or FeatureSpec.default()
        self.names: list[str] = self.spec.names
        self.warmup: int = self.spec.warmup
        self._plan = [(_KIND_CODE[f.kind], f.window, f.warmup, f.name) for f in self.spec.features]
        self._size = self.spec.max_lag
        self.reset()

    def reset(self) -> None:
        size = self._size
        self.count = 0
        self._prev_close = _NAN
        self._prev_volume = _NAN
        self._L = self._Q = self._A = self._M = self._X = self._X2 = 0.0
        self._N = self._C = 0
        self._ring_L = [0.0] * size
        self._ring_Q = [0.0] * size
        self._ring_A = [0.0] * size
        self._ring_M = [0.0] * size
        self._ring_X = [0.0] * size
        self._ring_X2 = [0.0] * size
        self._ring_N = [0] * size
        self._ring_C = [0] * size

    @property
    def ready(self) -> bool:
        """True once every feature has a value."""
        return self.count > self.warmup

    def update(self, candle: Mapping[str, Any]) -> dict[str, float]:
        close = float(candle["close"])
        high = float(candle["high"])
        low = float(candle["low"])
        volume = float(candle["volume"])
        self._check(candle, close, high, low, volume)

        t = self.count
        size = self._size
        slot = t % size
        if t == 0:
            r = 0.0
        else:
            r = float(np.log(close / self._prev_close))
            self._N += r != 0.0
            self._C += volume != self._prev_volume
        self._prev_close, self._prev_volume = close, volume
        L = self._L = self._L + r
        Q = self._Q = self._Q + r * r
        A = self._A = self._A + abs(r)
        M = self._M = self._M + L
        x = float(np.log1p(volume))
        X = self._X = self._X + x
        X2 = self._X2 = self._X2 + x * x
        N, C = self._N, self._C
        rL, rQ, rA, rM, rX, rX2, rN, rC = (self._ring_L, self._ring_Q, self._ring_A, self._ring_M,
                                           self._ring_X, self._ring_X2, self._ring_N, self._ring_C)
        rL[slot], rQ[slot], rA[slot], rM[slot] = L, Q, A, M
        rX[slot], rX2[slot], rN[slot], rC[slot] = X, X2, N, C
        self.count = t + 1

        out: dict[str, float] = {}
        for code, w, warm, name in self._plan:
            if t < warm:
                out[name] = _NAN
                continue
            if code == 5:
                out[name] = float(np.log(high / low))
                continue
            back = (t - w) % size
            still = N - rN[back] == 0
            if code == 0:
                out[name] = L - rL[back]
            elif code == 1:
                out[name] = 0.0 if still else math.sqrt((Q - rQ[back]) / w)
            elif code == 2:
                gross = A - rA[back]
                if still or gross <= 0.0:
                    out[name] = 50.0
                else:  # rounding can leave the ratio a hair outside [-1, 1]
                    out[name] = min(max(50.0 * (1.0 + (L - rL[back]) / gross), 0.0), 100.0)
            elif code == 3:
                mean = (M - rM[back]) / w
                vol = math.sqrt((Q - rQ[back]) / w)
                out[name] = 0.0 if still or vol <= 0.0 else (L - mean) / vol
            else:
                mean = (X - rX[back]) / w
                var = (X2 - rX2[back]) / w - mean * mean
                std = math.sqrt(max(var, 0.0))
                flat = C - rC[(t - w + 1) % size] == 0
                out[name] = 0.0 if flat or std <= 0.0 else (x - mean) / std
        return out

    @staticmethod
    def _check(candle: Mapping[str, Any], close: float, high: float, low: float, volume: float) -> None:
        for name, value, positive in (("close", close, True), ("high", high, True), ("low", low, True),
                                      ("volume", volume, False)):
            if not math.isfinite(value) or (value <= 0.0 if positive else value < 0.0):
                need = "a positive number" if positive else "a non-negative number"
                raise DataError(f"candle open_time {candle.get('open_time')}: {name} is {value!r}, "
                                f"features need {need}")
