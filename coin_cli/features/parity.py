"""Online vs offline check over a candle table: the probe's parity gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.features.offline import compute_offline_array
from coin_cli.features.online import OnlineFeatureEngine
from coin_cli.features.spec import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

PARITY_TOLERANCE = 1e-9
"""Largest allowed |online - offline| after warm-up, relative to the feature's scale (its std)."""


def parity_report(candles: pd.DataFrame, spec: FeatureSpec | None = None, offline: np.ndarray | None = None,
                  tolerance: float = PARITY_TOLERANCE) -> dict[str, Any]:
    """Run the online engine over every candle and compare with the offline matrix."""
    spec = spec or FeatureSpec.default()
    cols = {c: candles[c].to_numpy(np.float64) for c in ("high", "low", "close", "volume")}
    if offline is None:
        offline = compute_offline_array(cols["high"], cols["low"], cols["close"], cols["volume"], spec)
    engine = OnlineFeatureEngine(spec)
    update = engine.update
    names = spec.names
    online = np.empty_like(offline)
    open_time = candles["open_time"].to_numpy().tolist()
    rows = zip(open_time, cols["high"].tolist(), cols["low"].tolist(), cols["close"].tolist(),
               cols["volume"].tolist(), strict=True)
    for i, (t, high, low, close, volume) in enumerate(rows):
        values = update({"open_time": t, "high": high, "low": low, "close": close, "volume": volume})
        online[i] = [values[name] for name in names]
    per_feature: dict[str, dict[str, float]] = {}
    worst = 0.0
    for j, feat in enumerate(spec.features):
        off, on = offline[feat.warmup:, j], online[feat.warmup:, j]
        both_nan = np.isnan(off) & np.isnan(on)
        diff = np.where(both_nan, 0.0, np.abs(on - off))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only is a failure
        finite = off[np.isfinite(off)]
        scale = float(np.std(finite)) if finite.size else 1.0
        scale = scale if scale > 0.0 else 1.0
        max_abs = float(diff.max()) if diff.size else 0.0
        scaled = max_abs / scale
        worst = max(worst, scaled)
        per_feature[feat.name] = {"max_abs_diff": max_abs, "scale": scale, "max_scaled_diff": scaled}
    identical = bool(np.array_equal(online, offline, equal_nan=True))
    return {"passed": worst <= tolerance, "tolerance": tolerance, "max_scaled_diff": worst,
            "bit_identical": identical, "rows": len(offline), "features": per_feature}
