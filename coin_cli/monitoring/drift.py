"""Feature drift: the population stability index (PSI) of each feature over a rolling window of
live bars against its distribution on the training split.

`coin train` records the reference as decile edges per feature (`reference_quantiles`, in
feature_manifest.json under "drift_reference"); the runtime keeps, per feature, the bin of each of
the last `monitoring.drift_window` values and the bin counts (O(features) per bar: a bisect and
two counter updates), and computes PSI = sum((a - e) * ln(a / e)) every `every` bars, with the
reference bins' expected share e = 1/bins and a floor on empty bins. Above
`monitoring.drift_threshold` (0.25: a large shift by the usual reading) it raises FEATURE_DRIFT.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Any

import numpy as np

BINS = 10
FLOOR = 1e-4   # share given to an empty bin: PSI stays finite


def reference_quantiles(features: np.ndarray, names: list[str], bins: int = BINS) -> dict[str, Any]:
    """Inner quantile edges of each column of `features` (rows of the training split)."""
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges: dict[str, list[float]] = {}
    for k, name in enumerate(names):
        col = features[:, k]
        col = col[np.isfinite(col)]
        if len(col):
            edges[name] = [float(v) for v in np.quantile(col, qs)]
    return {"bins": bins, "edges": edges, "rows": len(features)}


class DriftMonitor:
    """Rolling PSI per feature. `update(row)` takes the feature row in `names` order."""

    def __init__(self, reference: dict[str, Any], names: list[str], window: int, threshold: float,
                 every: int | None = None) -> None:
        edges = reference.get("edges", {})
        self.features = [(k, name, list(edges[name])) for k, name in enumerate(names) if name in edges]
        self.bins = int(reference.get("bins", BINS))
        self.window = window
        self.threshold = threshold
        self.every = every or max(1, window // 10)
        self.counts = [[0] * self.bins for _ in self.features]
        self.history: list[deque[int]] = [deque() for _ in self.features]
        self.seen = 0
        self.values: dict[str, float] = {}

    def update(self, row: Any) -> dict[str, float] | None:
        """Add one bar; the PSI values when they were recomputed (every `every` bars), else None."""
        keyed = isinstance(row, dict)  # the engine's row is a dict by name (a trained model's policy)
        for j, (k, name, edges) in enumerate(self.features):
            value = row[name if keyed else k]
            if value != value:  # NaN: still warming up
                continue
            b = bisect_right(edges, value)
            hist, counts = self.history[j], self.counts[j]
            hist.append(b)
            counts[b] += 1
            if len(hist) > self.window:
                counts[hist.popleft()] -= 1
        self.seen += 1
        if self.seen % self.every:
            return None
        self.values = self.psi()
        return self.values

    def psi(self) -> dict[str, float]:
        expected = 1.0 / self.bins
        out: dict[str, float] = {}
        for j, (_k, name, _edges) in enumerate(self.features):
            n = len(self.history[j])
            if n < self.window:  # not a full window yet
                continue
            total = 0.0
            for c in self.counts[j]:
                actual = max(c / n, FLOOR)
                total += (actual - expected) * math.log(actual / expected)
            out[name] = total
        return out

    def drifting(self) -> dict[str, float]:
        return {name: v for name, v in self.values.items() if v > self.threshold}
