"""Offline features: vectorised numpy over a whole candle table (pandas only at the boundary).

Every formula here has a twin in online.py with the same operations in the same order (see
spec.py); keep them in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coin_cli.errors import DataError
from coin_cli.features.spec import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd


def compute_offline(candles: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Features for every row of `candles` (index aligned; NaN during each feature's warm-up)."""
    import pandas as pd

    spec = spec or FeatureSpec.default()
    missing = [c for c in ("open_time", "high", "low", "close", "volume") if c not in candles.columns]
    if missing:
        raise DataError(f"candles lack column(s) {', '.join(missing)} needed for features")
    values = compute_offline_array(
        candles["high"].to_numpy(np.float64), candles["low"].to_numpy(np.float64),
        candles["close"].to_numpy(np.float64), candles["volume"].to_numpy(np.float64), spec,
        open_time=candles["open_time"].to_numpy(),
    )
    return pd.DataFrame(values, index=candles.index, columns=spec.names)


def compute_offline_array(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                          spec: FeatureSpec | None = None, *, open_time: np.ndarray | None = None) -> np.ndarray:
    """The feature matrix, shape (rows, len(spec.names)), float64."""
    spec = spec or FeatureSpec.default()
    n = len(close)
    _validate(high, low, close, volume, open_time)
    # one contiguous row per feature; the transpose hands pandas its preferred column blocks
    out = np.empty((len(spec.features), n))
    if n == 0:
        return out.T
    kinds = {f.kind for f in spec.features}

    r = np.zeros(n)
    r[1:] = np.log(close[1:] / close[:-1])
    L = np.cumsum(r)
    N = np.cumsum(r != 0.0, dtype=np.int64)
    Q = np.cumsum(r * r) if kinds & {"vol", "ma_dist"} else None
    A = np.cumsum(np.abs(r)) if "rsi" in kinds else None
    M = np.cumsum(L) if "ma_dist" in kinds else None
    if "volz" in kinds:
        x = np.log1p(volume)
        X = np.cumsum(x)
        X2 = np.cumsum(x * x)
        changed = np.zeros(n, dtype=np.int64)
        changed[1:] = volume[1:] != volume[:-1]
        C = np.cumsum(changed)

    # scratch rows reused by every feature (fresh 8 MB temporaries cost page faults, not arithmetic);
    # `out=` changes where a result goes, never its value, so the online twin stays bit-identical
    tmp1, tmp2, tmp3 = np.empty(n), np.empty(n), np.empty(n)
    counts = np.empty(n, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, feat in enumerate(spec.features):
            w = feat.window
            dst = out[j]
            if feat.kind == "range":
                np.divide(high, low, out=dst)
                np.log(dst, out=dst)
                continue
            dst[:w] = np.nan
            if n <= w:
                continue
            m = n - w
            dst, a, b, c, cnt = dst[w:], tmp1[:m], tmp2[:m], tmp3[:m], counts[:m]
            np.subtract(N[w:], N[:-w], out=cnt)
            still = cnt == 0  # no price movement in the window
            if feat.kind == "ret":
                np.subtract(L[w:], L[:-w], out=dst)
            elif feat.kind == "vol":
                np.subtract(Q[w:], Q[:-w], out=dst)
                np.divide(dst, w, out=dst)
                np.sqrt(dst, out=dst)
                np.copyto(dst, 0.0, where=still)
            elif feat.kind == "rsi":  # 50 * (1 + net / gross)
                np.subtract(A[w:], A[:-w], out=a)
                np.subtract(L[w:], L[:-w], out=dst)
                np.divide(dst, a, out=dst)
                np.add(dst, 1.0, out=dst)
                np.multiply(dst, 50.0, out=dst)
                np.clip(dst, 0.0, 100.0, out=dst)
                np.copyto(dst, 50.0, where=still | (a <= 0.0))
            elif feat.kind == "ma_dist":  # (L - mean(L)) / vol
                np.subtract(M[w:], M[:-w], out=a)
                np.divide(a, w, out=a)
                np.subtract(Q[w:], Q[:-w], out=b)
                np.divide(b, w, out=b)
                np.sqrt(b, out=b)
                np.subtract(L[w:], a, out=dst)
                np.divide(dst, b, out=dst)
                np.copyto(dst, 0.0, where=still | (b <= 0.0))
            elif feat.kind == "volz":  # (x - mean) / sqrt(max(E[x^2] - mean^2, 0))
                np.subtract(X[w:], X[:-w], out=a)
                np.divide(a, w, out=a)
                np.subtract(X2[w:], X2[:-w], out=b)
                np.divide(b, w, out=b)
                np.multiply(a, a, out=c)
                np.subtract(b, c, out=b)
                np.maximum(b, 0.0, out=b)
                np.sqrt(b, out=b)
                np.subtract(x[w:], a, out=dst)
                np.divide(dst, b, out=dst)
                np.subtract(C[w:], C[1:n - w + 1], out=cnt)  # volume changes inside the window
                np.copyto(dst, 0.0, where=(cnt == 0) | (b <= 0.0))
    return out.T

def _validate(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
              open_time: np.ndarray | None) -> None:
    for name, col, positive in (("close", close, True), ("high", high, True), ("low", low, True),
                                ("volume", volume, False)):
        if len(col) == 0 or ((col.min() > 0.0 if positive else col.min() >= 0.0) and col.max() < np.inf):
            continue  # the fast path; NaN fails both comparisons
        bad = ~np.isfinite(col) | ((col <= 0.0) if positive else (col < 0.0))
        if bad.any():
            row = int(np.argmax(bad))
            where = f"row {row}" + (f" (open_time {int(open_time[row])})" if open_time is not None else "")
            need = "a positive number" if positive else "a non-negative number"
            raise DataError(f"candles {where}: {name} is {float(col[row])!r}, features need {need}")
