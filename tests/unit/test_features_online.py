"""OnlineFeatureEngine: warm-up, reset, bad candles, bit-identical to offline on random data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coin_cli.errors import DataError
from coin_cli.features import FeatureSpec, OnlineFeatureEngine, compute_offline


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    close[100:140] = close[99]  # a flat, zero-volume stretch
    volume = rng.lognormal(1, 2, n)
    volume[100:140] = 0.0
    return pd.DataFrame({"open_time": np.arange(n) * 3_600_000, "open": close, "high": close * 1.003,
                         "low": close * 0.997, "close": close, "volume": volume})


def test_warmup_then_values_and_reset_replays_identically() -> None:
    frame = _frame(400, 3)
    engine = OnlineFeatureEngine()
    assert engine.names == FeatureSpec.default().names and engine.warmup == 168
    rows = frame.to_dict("records")
    first = [engine.update(r) for r in rows]
    assert all(math.isnan(first[i]["vol_168"]) for i in range(168))
    assert not engine.ready or engine.count > 168
    assert math.isfinite(first[168]["vol_168"]) and engine.ready
    engine.reset()
    again = [engine.update(r) for r in rows]
    assert pd.DataFrame(again).equals(pd.DataFrame(first))
    offline = compute_offline(frame)
    np.testing.assert_array_equal(pd.DataFrame(first).to_numpy(), offline.to_numpy())


def test_bad_candle_is_a_data_error_naming_the_bar() -> None:
    engine = OnlineFeatureEngine()
    with pytest.raises(DataError, match=r"open_time 42: close is -1\.0"):
        engine.update({"open_time": 42, "open": 1.0, "high": 1.0, "low": 1.0, "close": -1.0, "volume": 1.0})
    with pytest.raises(DataError, match="volume is inf"):
        engine.update({"open_time": 43, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": float("inf")})


def test_outputs_subset_gives_the_same_values_as_the_whole_spec() -> None:
    frame = _frame(400, 5)
    rows = frame.to_dict("records")
    whole = OnlineFeatureEngine()
    full = [whole.update(r) for r in rows]
    for outputs in (["vol_24"], ["volz_48", "rsi_14"], ["ma_dist_48", "range"], []):
        engine = OnlineFeatureEngine(outputs=outputs)
        got = [engine.update(r) for r in rows]
        assert all(list(g) == [n for n in engine.names if n in outputs] for g in got)
        expected = pd.DataFrame([{n: f[n] for n in outputs} for f in full], columns=outputs)
        assert pd.DataFrame(got, columns=outputs).equals(expected)
    with pytest.raises(ValueError, match="unknown feature output"):
        OnlineFeatureEngine(outputs=["vol_25"])
