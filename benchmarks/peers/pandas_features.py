"""coin's nine default features written the way a pandas user would: rolling windows on Series.

Same definitions as coin_cli/features/spec.py (log returns r, windows over bars (t-w, t], NaN for
the first w rows, the no-movement rules), so the figures are comparable and the values can be
checked against coin's (the runner reports the largest difference relative to each feature's scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pandas_features(frame: Any, spec: Any) -> Any:
    import pandas as pd

    close, volume = frame["close"], frame["volume"]
    r = np.log(close / close.shift(1)).fillna(0.0)
    moved = (r != 0.0).astype(np.int64)
    out = {}
    for feat in spec.features:
        kind, w = feat.kind, feat.window
        if kind == "range":
            out[feat.name] = np.log(frame["high"] / frame["low"])
            continue
        still = moved.rolling(w).sum() == 0
        if kind == "ret":
            col = r.rolling(w).sum()
        elif kind == "vol":
            col = np.sqrt((r * r).rolling(w).mean()).mask(still, 0.0)
        elif kind == "rsi":
            gross = r.abs().rolling(w).sum()
            col = (50.0 * (1.0 + r.rolling(w).sum() / gross)).clip(0.0, 100.0).mask(still | (gross <= 0.0), 50.0)
        elif kind == "ma_dist":
            logp = r.cumsum()
            vol = np.sqrt((r * r).rolling(w).mean())
            col = ((logp - logp.rolling(w).mean()) / vol).mask(still | (vol <= 0.0), 0.0)
        elif kind == "volz":
            x = np.log1p(volume)
            std = x.rolling(w).std(ddof=0)
            changes = (volume != volume.shift(1)).astype(np.int64).rolling(w - 1).sum()
            col = ((x - x.rolling(w).mean()) / std).mask((changes == 0) | (std <= 0.0), 0.0)
        else:
            raise ValueError(kind)
        col = col.copy()
        col.iloc[:w] = np.nan
        out[feat.name] = col
    return pd.DataFrame(out, index=frame.index)
